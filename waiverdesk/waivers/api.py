"""/api/v1/waivers: create, list, read, and every action on a waiver."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict

from waiverdesk.api.api import ERRORS, need
from waiverdesk.api.documented import Day, OptionalDay, enum, policy_types
from waiverdesk.core.lifecycle import WaiverStatus

from . import access, services
from .detail import detail
from .intake import WaiverBody
from .models import Approval, RouteStep

router = Router(tags=["waivers"])


class RiskOut(Schema):
    financial: int
    operational: int
    reputational: int
    compliance: int
    overall: str


Decision = Approval.Decision


class ApprovalOut(Schema):
    user: str
    on_behalf_of: str | None = Field(None, description="the approver a delegate decided for")
    decision: Decision
    comment: str
    at: str


class StepOut(Schema):
    tier: str
    role: str
    required: int
    status: RouteStep.StepStatus
    reasons: list[str]
    sla_hours: int
    stage: int = Field(description="steps of one stage are open at the same time")
    escalated_to: str | None = None
    beside: list[str] = Field(description="the tiers open at the same time as this one")
    approvals: list[ApprovalOut]


class DecisionOut(Schema):
    outcome: str
    rationale: str
    at: str
    approvers: list[str]


class ConditionOut(Schema):
    text: str
    owner: str
    due: str
    status: str
    customer_visible: bool


class TaskOut(Schema):
    id: int
    name: str
    title: str
    role: str
    owner: str | None
    required: bool
    due: str
    status: str
    done_by: str | None
    done_at: str | None


class MonthOut(Schema):
    month: str
    peak: float


class FindingOut(Schema):
    kind: str
    detail: str


class UsageOut(Schema):
    allowed: float | None
    peak: float | None
    months: list[MonthOut]
    findings: list[FindingOut]


class WaiverOut(Schema):
    reference: str
    status: WaiverStatus
    kind: str
    type: str
    policy_version: int
    requester: str
    control_owner: str | None
    customer: str
    account_owner: str | None
    products: list[str]
    license_type: str
    region: str
    start: date
    end: date
    scope: dict[str, Any]
    financials: dict[str, Any]
    money: dict[str, Any] = Field(
        description="The figures in the policy's base currency (`*_base`), with the `rate` "
        "(base units per unit of `currency`) and its `rate_day`, recorded at submission."
    )
    justification: dict[str, Any]
    evidence: dict[str, Any]
    outcomes: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    risk: RiskOut
    risk_rules: dict[str, str]
    risk_overrides: dict[str, Any]
    triggers: list[dict[str, Any]]
    checks: dict[str, Any]
    round: int
    route: list[StepOut]
    decision: DecisionOut | None
    conditions: list[ConditionOut]
    tasks: list[TaskOut]
    predecessor: str | None
    renewal_count: int
    timeline: list[dict[str, Any]]
    usage: UsageOut | None


class WaiverSummary(Schema):
    reference: str
    status: WaiverStatus
    kind: str
    type: str
    customer: str
    requester: str
    start: date
    end: date
    risk: str | None


class Page(Schema):
    count: int
    limit: int
    offset: int
    items: list[WaiverSummary]


class Filters(Schema):
    status: WaiverStatus | None = None
    type: str | None = Field(None, json_schema_extra=enum(policy_types))
    customer: str | None = None
    product: str | None = None
    requester: str | None = None
    pending_for_me: bool = False
    expiring_before: date | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class ChangesIn(Schema):
    """The fields of the request body that change, any of them; those left out stay."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, json_schema_extra=enum(policy_types))
    customer: str | None = None
    products: list[str] | None = None
    license_type: str | None = None
    region: str | None = None
    start: OptionalDay = None
    end: OptionalDay = None
    scope: dict[str, Any] | None = None
    financials: dict[str, Any] | None = None
    justification: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None
    outcomes: list[dict[str, Any]] | None = None
    control_owner: str | None = None
    submit: bool | None = None


class ReasonIn(Schema):
    reason: str = ""


class ConditionIn(Schema):
    text: str
    owner: str
    due: Day
    customer_visible: bool = False  # told to the customer in the notice; otherwise internal


class DecisionIn(Schema):
    decision: str = Field(json_schema_extra=enum(lambda: Decision.values))
    comment: str = ""
    tier: str | None = Field(None, max_length=60, description="the step, when several are open")
    conditions: list[ConditionIn] = []
    checks: list[str] = []


def visible(request: HttpRequest, reference: str) -> str:
    return access.require_visible(request.user, reference)


def changes(body: ChangesIn) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


def shown(reference: str) -> dict[str, Any]:
    return detail(services.get(reference))


@router.post(
    "", operation_id="createWaiver", response={201: WaiverOut, **ERRORS}, summary="Create a request"
)
def create(request, body: WaiverBody):
    """Create a draft; with `"submit": true` it is submitted at once."""
    need(request, "write")
    waiver = services.create(body.model_dump(mode="json"), request.user)
    return Status(201, detail(waiver))


@router.get("", operation_id="listWaivers", response={200: Page, **ERRORS}, summary="List requests")
def list_waivers(request, filters: Query[Filters]):
    """The requests the caller may see, newest first, filtered and paginated."""
    need(request, "read")
    f = filters
    access.require_known_type(f.type)
    waivers = access.search(request.user, **f.model_dump(exclude={"limit", "offset"}))
    items = [
        {
            "reference": w.reference,
            "status": w.status,
            "kind": w.kind,
            "type": w.type,
            "customer": w.customer.external_id,
            "requester": w.requester.username,
            "start": w.start,
            "end": w.end,
            "risk": w.risk.get("overall"),
        }
        for w in waivers[f.offset : f.offset + f.limit]
    ]
    return {"count": waivers.count(), "limit": f.limit, "offset": f.offset, "items": items}


@router.get(
    "/{reference}",
    operation_id="getWaiver",
    response={200: WaiverOut, **ERRORS},
    summary="One request",
)
def read(request, reference: str):
    need(request, "read")
    return detail(access.visible_waiver(request.user, reference))


@router.post(
    "/{reference}/submit", operation_id="submitWaiver", response={200: WaiverOut, **ERRORS}
)
def submit(request, reference: str):
    need(request, "write")
    services.submit(visible(request, reference), request.user)
    return shown(reference)


@router.post(
    "/{reference}/withdraw", operation_id="withdrawWaiver", response={200: WaiverOut, **ERRORS}
)
def withdraw(request, reference: str, body: ReasonIn):
    need(request, "write")
    services.withdraw(visible(request, reference), request.user, body.reason)
    return shown(reference)


@router.post(
    "/{reference}/terminate", operation_id="terminateWaiver", response={200: WaiverOut, **ERRORS}
)
def terminate(request, reference: str, body: ReasonIn):
    need(request, "write")
    services.terminate(visible(request, reference), request.user, body.reason)
    return shown(reference)


@router.post(
    "/{reference}/renewals", operation_id="renewWaiver", response={201: WaiverOut, **ERRORS}
)
def renew(request, reference: str, body: ChangesIn):
    """A renewal: a new linked request; send a fresh `justification` and the new `end`."""
    need(request, "write")
    waiver = services.renew(visible(request, reference), request.user, changes(body))
    return Status(201, detail(waiver))


@router.post(
    "/{reference}/amendments", operation_id="amendWaiver", response={201: WaiverOut, **ERRORS}
)
def amend(request, reference: str, body: ChangesIn):
    """An amendment: the fields that change; it goes through the policy again."""
    need(request, "write")
    waiver = services.amend(visible(request, reference), request.user, changes(body))
    return Status(201, detail(waiver))


@router.post(
    "/{reference}/decisions", operation_id="decideWaiver", response={201: WaiverOut, **ERRORS}
)
def decide(request, reference: str, body: DecisionIn):
    """Approve, reject or request changes on the step the caller may act on."""
    need(request, "decide")
    approval = services.decide(
        visible(request, reference),
        request.user,
        body.decision,
        body.comment,
        [c.model_dump() for c in body.conditions],
        body.checks,
        tier=body.tier,
    )
    return Status(201, detail(approval.waiver))
