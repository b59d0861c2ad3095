"""/api/v1/delegations and /api/v1/decisions: an approver away, and many decisions at once."""

from __future__ import annotations

from ninja import Field, Router, Schema, Status

from waiverdesk.api.api import ERRORS, ErrorOut, need
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid

from . import access, services
from .services import delegating

router = Router(tags=["approvals"])


class DelegationIn(Schema):
    delegate: str = Field(max_length=150, description="who decides for the approver")
    starts: str = Field(max_length=40, description="the first day, YYYY-MM-DD")
    ends: str = Field(max_length=40, description="the last day, YYYY-MM-DD (included)")
    role: str = Field("", max_length=60, description="one approver role; empty: every one")
    delegator: str = Field("", max_length=150, description="the approver (admins: anyone's)")


class DelegationOut(Schema):
    id: int
    delegator: str
    delegate: str
    role: str | None
    starts: str
    ends: str
    ended_at: str | None


class DecisionsIn(Schema):
    references: list[str] = Field(min_length=1, max_length=200)
    decision: str
    comment: str = ""


class DecisionOutcome(Schema):
    reference: str
    decided: bool
    status: str | None = None
    errors: list[ErrorOut] = []


class DecisionsOut(Schema):
    results: list[DecisionOutcome]


@router.post(
    "/delegations",
    operation_id="createDelegation",
    response={201: DelegationOut, **ERRORS},
    summary="Delegate an approver's decisions",
)
def create_delegation(request, body: DelegationIn):
    """The approver (the caller, or for admins `delegator`) hands their decisions to
    `delegate` from `starts` to `ends`: every approver role they hold, or `role`."""
    need(request, "decide")
    made = delegating.delegate(
        body.delegator or request.user,
        body.delegate,
        body.starts,
        body.ends,
        request.user,
        body.role,
    )
    return Status(201, delegating.describe(made))


@router.get(
    "/delegations",
    operation_id="listDelegations",
    response={200: list[DelegationOut], **ERRORS},
    summary="The caller's delegations",
)
def list_delegations(request):
    """Those the caller gave and was given, newest first."""
    need(request, "read")
    return [delegating.describe(d) for d in delegating.of(request.user)[:500]]


@router.post(
    "/delegations/{pk}/end",
    operation_id="endDelegation",
    response={200: DelegationOut, **ERRORS},
    summary="Call a delegation off",
)
def end_delegation(request, pk: int):
    need(request, "decide")
    return delegating.describe(delegating.end(pk, request.user))


@router.post(
    "/decisions",
    operation_id="decideWaivers",
    response={200: DecisionsOut, **ERRORS},
    summary="The same decision on many requests",
)
def decide_many(request, body: DecisionsIn):
    """Each request is decided on its own, as if alone: its own checks (separation of duties
    included), transaction and audit entry. The answer says, for each, whether it was decided
    and, if not, why."""
    need(request, "decide")
    results = []
    for reference in dict.fromkeys(body.references):
        try:
            if "\x00" in reference:
                raise services.NotFound(reference)
            access.require_visible(request.user, reference)
            approval = services.decide(reference, request.user, body.decision, body.comment)
        except services.NotFound:
            results.append(_refused(reference, None, "not_found", "not found"))
        except Invalid as invalid:
            if any(p.field in ("decision", "comment") for p in invalid.problems):
                raise  # the same for every item: the request itself is wrong
            for p in invalid.problems:
                results.append(_refused(reference, p.field, p.code, p.message))
        except Denied as denied:
            if not denied.audited:
                audit.refused_at_door("api", request, denied.code, denied.message)
            results.append(_refused(reference, None, denied.code, denied.message))
        else:
            results.append(
                {"reference": reference, "decided": True, "status": approval.waiver.status}
            )
    return {"results": _merged(results)}


def _refused(reference: str, field: str | None, code: str, message: str) -> dict:
    return {
        "reference": reference,
        "decided": False,
        "errors": [{"field": field, "code": code, "message": message}],
    }


def _merged(results: list[dict]) -> list[dict]:
    """One result per reference, its errors together."""
    merged: dict[str, dict] = {}
    for r in results:
        if r["reference"] in merged:
            merged[r["reference"]]["errors"] += r["errors"]
        else:
            merged[r["reference"]] = r
    return list(merged.values())
