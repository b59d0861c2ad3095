"""/api/v1/governance: pattern findings, review campaigns, and attestations."""

from __future__ import annotations

from datetime import datetime

from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from waiverdesk import clock
from waiverdesk.api.api import ERRORS, need
from waiverdesk.core.errors import Denied
from waiverdesk.web import require_governance, sees_patterns

from . import patterns, reviews
from .models import Campaign

router = Router(tags=["governance"])


class PatternOut(Schema):
    kind: str
    title: str
    detail: str
    evidence: dict
    references: list[str]


class CampaignOut(Schema):
    id: int
    every_days: int
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    total: int
    done: int
    open: int
    overdue: int
    escalated: int


class ReviewOut(Schema):
    id: int
    campaign: int
    reference: str
    owner: str
    due_at: datetime
    outcome: str
    rationale: str
    decided_at: datetime | None
    overdue: bool
    escalated: bool


class CampaignDetailOut(CampaignOut):
    reviews: list[ReviewOut]


class AttestIn(Schema):
    outcome: str
    rationale: str = ""


def _campaign(row: dict) -> dict:
    c = row["campaign"]
    return {**row, "id": c.pk, "every_days": c.every_days, "opened_at": c.opened_at,
            "due_at": c.due_at, "closed_at": c.closed_at}  # fmt: skip


def _review(r) -> dict:
    late = {"overdue": r.flagged_at is not None, "escalated": r.escalated_at is not None}
    return {"id": r.pk, "campaign": r.campaign_id, "reference": r.waiver.reference,
            "owner": r.owner.username, "due_at": r.due_at, "outcome": r.outcome,
            "rationale": r.rationale, "decided_at": r.decided_at, **late}  # fmt: skip


def _oversight(request) -> None:
    need(request, "read")
    require_governance(request.user)


@router.get(
    "/patterns", operation_id="listPatternFindings", response={200: list[PatternOut], **ERRORS}
)
def findings(request):
    """The patterns the policy's thresholds find (compliance, policy admins, admins)."""
    need(request, "read")
    if not sees_patterns(request.user):
        raise Denied("missing_role", "only auditor, policy_admin or admin may read patterns")
    return [f.__dict__ for f in patterns.findings(clock.now())]


@router.get(
    "/campaigns", operation_id="listReviewCampaigns", response={200: list[CampaignOut], **ERRORS}
)
def campaigns(request):
    """Review campaigns, newest first, with their progress."""
    _oversight(request)
    return [_campaign(row) for row in reviews.progress(list(Campaign.objects.all()[:100]))]


@router.get(
    "/campaigns/{pk}", operation_id="getReviewCampaign", response={200: CampaignDetailOut, **ERRORS}
)
def campaign(request, pk: int):
    """One campaign with the reviews the caller may see."""
    _oversight(request)
    found = get_object_or_404(Campaign, pk=pk)
    rows = reviews.visible_reviews(request.user).filter(campaign=found)
    return {**_campaign(reviews.progress([found])[0]), "reviews": [_review(r) for r in rows]}


@router.post("/reviews/{pk}", operation_id="attestReview", response={200: ReviewOut, **ERRORS})
def attest(request, pk: int, body: AttestIn):
    """The control owner's outcome: still_needed, amend or terminate, with a rationale."""
    need(request, "decide")
    return _review(reviews.attest(pk, request.user, body.outcome, body.rationale))
