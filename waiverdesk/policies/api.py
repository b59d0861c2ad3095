"""/api/v1/policy and /api/v1/simulate."""

from __future__ import annotations

from typing import Any

from ninja import Router, Schema

from waiverdesk.api.api import ERRORS, need
from waiverdesk.waivers.detail import evaluation_dict
from waiverdesk.waivers.intake import WaiverBody
from waiverdesk.waivers.services import simulate

from . import services

router = Router(tags=["policy"])


class TypeOut(Schema):
    name: str
    label: str
    description: str
    max_duration_days: int
    review_window_days: int | None
    required_fields: list[str]
    required_evidence: list[str]
    checks: list[str]


class PolicyOut(Schema):
    version: int
    name: str
    sha256: str
    published_at: str
    types: list[TypeOut]
    tiers: list[dict[str, Any]]


class SimulationOut(Schema):
    policy_version: int
    eligible: bool
    problems: list[dict[str, Any]]
    risk: dict[str, Any]
    triggers: list[dict[str, Any]]
    route: list[dict[str, Any]]


@router.get(
    "/policy",
    operation_id="getPolicy",
    response={200: PolicyOut, **ERRORS},
    summary="The active policy",
)
def active_policy(request):
    need(request, "read")
    version = services.active_version()
    policy = services.compiled(version)
    return {
        "version": version.number,
        "name": version.name,
        "sha256": version.sha256,
        "published_at": version.published_at.isoformat(),
        "types": [
            {
                "name": name,
                "label": t.label,
                "description": t.description,
                "max_duration_days": t.max_duration_days,
                "review_window_days": t.review_window_days,
                "required_fields": t.required_fields,
                "required_evidence": t.required_evidence,
                "checks": [c.name for c in t.checks],
            }
            for name, t in policy.types.items()
        ],
        "tiers": [t.model_dump() for t in policy.tiers],
    }


@router.post(
    "/simulate",
    operation_id="simulateWaiver",
    response={200: SimulationOut, **ERRORS},
    summary="Evaluate, not save",
)
def simulate_request(request, body: WaiverBody):
    """Eligibility, risk and route of a request under the active policy; nothing is stored."""
    need(request, "read")
    result = simulate(body.model_dump(mode="json"))
    return {"policy_version": result.policy_version, **evaluation_dict(result.evaluation)}
