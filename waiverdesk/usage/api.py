"""POST /api/v1/usage: a batch of usage records from a product's metering."""

from __future__ import annotations

from typing import Any

from ninja import Field, Router, Schema

from waiverdesk import clock
from waiverdesk.api.api import ERRORS, need
from waiverdesk.directory.services import require_role

from . import services

router = Router(tags=["usage"])


class UsageIn(Schema):
    records: list[dict[str, Any]] = Field(..., max_length=10_000)


class ProblemOut(Schema):
    field: str
    code: str
    message: str


class RejectedOut(Schema):
    index: int
    errors: list[ProblemOut]


class UsageReport(Schema):
    accepted: int
    duplicates: int
    rejected: list[RejectedOut]


@router.post(
    "",
    operation_id="sendUsage",
    response={200: UsageReport, **ERRORS},
    summary="Send usage records",
)
def send_usage(request, body: UsageIn):
    """Good records are kept, bad ones listed by index with their problems; a record whose
    `record_id` was received before is counted as a duplicate, not again."""
    need(request, "write")
    require_role(request.user, {"implementer", "admin"}, "send usage records")
    report = services.ingest(enumerate(body.records), clock.now())
    return {
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": [{"index": r["position"], "errors": r["errors"]} for r in report.rejected],
    }
