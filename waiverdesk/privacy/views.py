"""The privacy page, for admins (and auditors, for legal holds): erase a person or a contact,
place and release legal holds, and see what the retention erases in the next 90 days. Every
change is a call to `privacy.services`, as from the command line and the worker."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.directory.services import require_role, roles_of
from waiverdesk.web import page

from . import services
from .models import LegalHold

AHEAD = 90  # days of the retention shown
SHOWN = 200  # of what is due, the earliest


@page
def privacy(request: HttpRequest):
    return _shown(request)


def _shown(request: HttpRequest, refused: Invalid | None = None, form: str = ""):
    """The page, with the problems of a form that was refused (422) at its fields."""
    require_role(request.user, services.HOLDERS, "see the privacy page")
    problems = refused.problems if refused else []
    holds = LegalHold.objects.filter(released_at=None).select_related(
        "customer", "person", "waiver", "owner"
    )
    due = services.due(clock.now().date(), AHEAD)
    return render(request, "privacy/privacy.html", {
        "due": due[:SHOWN], "more": max(0, len(due) - SHOWN), "ahead": AHEAD,
        "holds": holds.order_by("pk"), "erases": "admin" in roles_of(request.user),
        "problem_at": {p.field: p.message for p in problems},
        "form": {**request.POST.dict(), "form": form} if refused else {},
    }, status=422 if refused else 200)  # fmt: skip


@page
@require_POST
def erase(request: HttpRequest):
    require_role(request.user, {"admin"}, "erase personal data")
    person = request.POST.get("person", "")[:254]
    try:
        if request.POST.get("confirm") != "yes":
            raise Invalid(
                [Problem("confirm", "required", "tick the box: erasing cannot be undone")]
            )
        pseudonym = services.erase(person, request.user, request.POST.get("why", "")[:500])
    except Invalid as refused:
        return _shown(request, refused, "erase")
    messages.success(request, f"Erased: the records now say {pseudonym}")
    return redirect("privacy")


@page
@require_POST
def hold(request: HttpRequest):
    said = {k: request.POST.get(k, "")[:500] for k in ("on", "target", "reason", "owner")}
    try:
        made = services.hold(said["on"], said["target"], said["reason"], said["owner"],
                             request.user)  # fmt: skip
    except Invalid as refused:
        return _shown(request, refused, "hold")
    messages.success(request, f"Legal hold #{made.pk} on {made.on} placed")
    return redirect("privacy")


@page
@require_POST
def release(request: HttpRequest, pk: int):
    try:
        ended = services.release(pk, request.user)
    except Invalid as refused:
        messages.error(request, refused.problems[0].message)
    else:
        messages.success(request, f"Legal hold #{ended.pk} on {ended.on} released")
    return redirect("privacy")
