"""/api/v1/entitlements: what exceptions grant and revert, for licensing systems to apply."""

from __future__ import annotations

from typing import Any

from ninja import Field, Query, Router, Schema

from waiverdesk.api.api import ERRORS, need
from waiverdesk.directory.services import require_role

from . import services

router = Router(tags=["entitlements"])
READERS = {"implementer", "auditor", "admin"}


class ChangeOut(Schema):
    id: int
    at: str
    change: str
    waiver: str
    customer: str
    product: str
    item: str
    value: Any


class EffectiveOut(Schema):
    customer: str
    product: str
    items: dict[str, Any]
    waivers: list[str]


class ChangeFilters(Schema):
    customer: str | None = None
    since: int = Field(0, ge=0, description="only changes numbered after this one")
    limit: int = Field(500, ge=1, le=5000)


class AccountFilters(Schema):
    customer: str | None = None
    product: str | None = None


@router.get(
    "",
    operation_id="listEntitlementChanges",
    response={200: list[ChangeOut], **ERRORS},
    summary="Grants and reverts",
)
def changes(request, filters: Query[ChangeFilters]):
    """Every grant and revert in order; poll with `since` set to the last id you applied."""
    need(request, "read")
    require_role(request.user, READERS, "read entitlement changes")
    found = services.changes(filters.customer, filters.since)[: filters.limit]
    return [services.as_row(c) for c in found]


@router.get(
    "/effective",
    operation_id="getEffectiveEntitlements",
    response={200: list[EffectiveOut], **ERRORS},
)
def effective(request, filters: Query[AccountFilters]):
    """The entitlement delta in force per customer and product."""
    need(request, "read")
    require_role(request.user, READERS, "read entitlement changes")
    return services.effective(filters.customer, filters.product)
