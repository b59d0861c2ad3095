"""The pages of approvers away and at their email: their delegations, and the confirmation
page a decision link from an email opens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.core.lifecycle import UNDER_REVIEW
from waiverdesk.directory.services import roles_of
from waiverdesk.web import page

from . import decision_links, services
from .models import Waiver
from .request_form import label_of
from .services import delegating

LABELS = {"delegate": "Who decides for you", "delegator": "Whose decisions",
          "starts": "From", "ends": "Until", "role": "Role"}  # fmt: skip


@page
def delegations(request: HttpRequest):
    """The person's delegations, given and received, and the form to hand their decisions
    to someone while they are away (admins: for anyone)."""
    user, problems, kept = request.user, [], {}
    is_admin = "admin" in roles_of(user)
    if request.method == "POST":
        kept = request.POST
        delegator = (is_admin and kept.get("delegator", "").strip()) or user
        try:
            made = delegating.delegate(delegator, kept.get("delegate", ""), kept.get("starts"),
                                       kept.get("ends"), user, kept.get("role", ""))  # fmt: skip
        except Invalid as invalid:
            problems = invalid.problems
        else:
            who = f"{made.delegate.username} decides for {made.delegator.username}"
            messages.success(request, f"{who} from {made.starts} to {made.ends}.")
            return redirect("delegations")
    today = clock.now().date()
    context = {
        "mine": delegating.of(user),
        "today": today,
        "roles": sorted(roles_of(user) & delegating.approver_roles()),
        "people": User.objects.filter(is_active=True).exclude(pk=user.pk).order_by("username"),
        "is_admin": is_admin,
        "kept": kept,
        "problems": [
            (LABELS.get(p.field, label_of(p.field)), p.field, p.message) for p in problems
        ],  # fmt: skip
        "problem_at": {p.field: p.message for p in problems},
    }
    return render(request, "waivers/delegations.html", context, status=422 if problems else 200)


@page
@require_POST
def end_delegation(request: HttpRequest, pk: int):
    delegating.end(pk, request.user)
    messages.success(request, "The delegation is called off; decisions made under it stand.")
    return redirect("delegations")


@page
def decide_from_email(request: HttpRequest, token: str):
    """A decision link from an email: a confirmation page for exactly that step, person,
    round and version; the decision is made only when the person confirms (a POST)."""
    try:
        link = decision_links.read(token)
    except Denied as denied:
        return render(request, "waivers/decide_link.html", {"refusal": denied.message}, status=400)
    waiver = Waiver.objects.filter(reference=link.reference).first()
    if waiver is None:
        raise services.NotFound(link.reference)
    problems, status = [], 200
    if request.method == "POST":
        comment = request.POST.get("comment", "")
        try:
            services.decide(link.reference, request.user, link.decision, comment,
                            tier=link.tier, link=link)  # fmt: skip
        except Invalid as invalid:
            problems, status = invalid.problems, 422
        except Denied as denied:
            return _link_page(request, waiver, link, denied)
        else:
            verb = decision_links.DECISIONS[link.decision].lower()
            messages.success(request, f"Your decision on {link.reference} is recorded ({verb}).")
            return redirect("waiver", reference=link.reference)
    refusal = decision_links.problem(link, waiver, request.user)
    if refusal is None and waiver.status in UNDER_REVIEW:
        try:
            services.step_for(waiver, request.user, services.policy_of(waiver),
                              clock.now().date(), link.tier)  # fmt: skip
        except Denied as denied:
            refusal = denied
    elif refusal is None:
        refusal = Denied("invalid_state", f"{waiver.reference} is {waiver.status.replace('_', ' ')}"
                         ": there is nothing to decide")  # fmt: skip
    return _link_page(request, waiver, link, refusal, problems, status)


def _link_page(request, waiver, link, refusal: Denied | None, problems=(), status=200):
    """The confirmation page, or why the link cannot be used (403 when it is someone else's,
    409 when the request moved on)."""
    if refusal is not None:
        status = 403 if refusal.code in ("link_not_yours", "missing_role") else 409
    context = {
        "waiver": services.get(waiver.reference),
        "link": link,
        "verb": decision_links.DECISIONS[link.decision],
        "needs_comment": link.decision != "approve",
        "refusal": refusal.message if refusal else "",
        "problems": [p.message for p in problems],
        "comment": request.POST.get("comment", "") if request.method == "POST" else "",
        "may_decide_now": refusal is not None
        and refusal.code in CURRENT_OFFERED
        and services.may_act(waiver, request.user) is None,
    }
    return render(request, "waivers/decide_link.html", context, status=status)


# Refusals after which the person may still decide the request as it is now, from its page.
CURRENT_OFFERED = frozenset({"link_old_round", "link_request_changed", "link_used"})
