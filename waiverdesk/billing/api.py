"""/api/v1/billing/discrepancies: where invoices differ from what exceptions authorize."""

from __future__ import annotations

from ninja import Query, Router, Schema

from waiverdesk.api.api import ERRORS, need
from waiverdesk.directory.services import require_role

from . import services

router = Router(tags=["billing"])
READERS = {"finance", "auditor", "admin"}


class DiscrepancyOut(Schema):
    invoice: str
    line: int
    customer: str
    product: str
    period_start: str
    period_end: str
    kind: str
    detail: str


class Filters(Schema):
    customer: str | None = None


@router.get(
    "/discrepancies",
    operation_id="listBillingDiscrepancies",
    response={200: list[DiscrepancyOut], **ERRORS},
)
def discrepancies(request, filters: Query[Filters]):
    """Over-discounted, under-billed and billed-after-expiry invoice lines."""
    need(request, "read")
    require_role(request.user, READERS, "read billing discrepancies")
    return services.as_rows(services.discrepancies(filters.customer))
