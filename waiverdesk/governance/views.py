"""The governance pages: pattern findings and review campaigns with their progress, and
the form where a control owner re-attests an exception."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.web import back_to, page, require_governance, sees_patterns, show_refusal

from . import patterns, reviews
from .models import Campaign


@page
def governance(request: HttpRequest):
    """Pattern findings (for compliance and policy owners) and review campaigns."""
    require_governance(request.user)
    findings = patterns.findings(clock.now()) if sees_patterns(request.user) else None
    campaigns = list(Campaign.objects.all()[:20])
    mine = reviews.visible_reviews(request.user).filter(outcome="", owner=request.user)
    return render(
        request,
        "governance/governance.html",
        {"findings": findings, "campaigns": reviews.progress(campaigns), "mine": mine},
    )


@page
def campaign(request: HttpRequest, pk: int):
    """One campaign: its progress and the reviews the user may see, with the attestation
    form on the user's own open ones."""
    require_governance(request.user)
    found = get_object_or_404(Campaign, pk=pk)
    rows = reviews.visible_reviews(request.user).filter(campaign=found)
    now = clock.now()
    return render(
        request,
        "governance/campaign.html",
        {
            "c": reviews.progress([found])[0],
            "rows": [{"review": r, "overdue": not r.outcome and r.due_at <= now} for r in rows],
            "outcomes": [(o.value, o.label) for o in reviews.DECIDED_BY_OWNER],
        },
    )


@page
@require_POST
def attest(request: HttpRequest, pk: int):
    try:
        review = reviews.attest(
            pk, request.user, request.POST.get("outcome", ""), request.POST.get("rationale", "")
        )
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
        return back_to(request, "governance")
    messages.success(request, f"{review.waiver.reference}: {review.get_outcome_display()}.")
    return redirect("campaign", review.campaign_id)
