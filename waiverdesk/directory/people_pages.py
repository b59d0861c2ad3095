"""The People pages, for admins: find a person, see their roles, tokens and the work they
are answerable for, change their roles, deactivate or reactivate them. Every change is a
call to `people` (one transaction with its audit entry), as from the command line or SCIM."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from waiverdesk.api import services as tokens
from waiverdesk.api.models import ApiToken
from waiverdesk.core.errors import Invalid
from waiverdesk.web import page

from . import people
from .services import known_roles, require_role, roles_of

SHOWN = 200  # people on a page; a search narrows them


def _admin(request: HttpRequest) -> None:
    require_role(request.user, {"admin"}, "administer people")


@page
def people_list(request: HttpRequest):
    _admin(request)
    text = request.GET.get("q", "").strip()[:100]
    found = User.objects.order_by("username").prefetch_related("groups")
    if text:
        fields = ("username", "email", "first_name", "last_name")
        found = found.filter(Q(*(Q(**{f"{f}__icontains": text}) for f in fields), _connector=Q.OR))
    count = found.count()
    return render(request, "directory/people.html", {
        "people": [(u, sorted(g.name for g in u.groups.all())) for u in found[:SHOWN]],
        "count": count, "shown": min(count, SHOWN), "q": text})  # fmt: skip


@page
def person_page(request: HttpRequest, username: str):
    _admin(request)
    user = get_object_or_404(User, username=username)
    return render(request, "directory/person.html", {
        "person": user,
        "roles": sorted(roles_of(user)),
        "offered": sorted(known_roles()),
        "tokens": ApiToken.objects.filter(user=user),
        "work": people.open_work(user),
        "subject": [part for part in (user.get_full_name(), user.email, _groups_of(user)) if part],
        "others": User.objects.filter(is_active=True).exclude(pk=user.pk).order_by("username"),
    })  # fmt: skip


def _groups_of(user: User) -> str:
    groups = ", ".join(user.provisioned_groups.values_list("display_name", flat=True))
    return f"directory groups: {groups}" if groups else ""


@page
@require_POST
def person_change(request: HttpRequest, username: str):
    """Roles given or taken, deactivation or reactivation, as the form says."""
    _admin(request)
    user = get_object_or_404(User, username=username)
    by, action = request.user.username, request.POST.get("action", "")
    try:
        if action == "roles":
            chosen = set(request.POST.getlist("roles"))
            held = roles_of(user)
            people.set_roles(username, sorted(chosen - held), sorted(held - chosen), by=by)
            now = ", ".join(sorted(roles_of(people.person(username)))) or "none"
            messages.success(request, f"{username}'s roles are now {now}")
        elif action == "deactivate":
            left = people.deactivate(username, by=by, reason=request.POST.get("reason", ""))
            handover = f"; {len(left)} item(s) to hand over" if left else ""
            messages.success(request, f"{username} may no longer sign in; their sessions ended "
                                      f"and API tokens were revoked{handover}")  # fmt: skip
        elif action == "hand_over":
            done, refused = people.hand_over(username, request.POST.get("to", ""), by=by)
            if done:
                messages.success(request, f"Handed over to {request.POST['to']}: "
                                 + "; ".join(str(w) for w in done))  # fmt: skip
            for work, why in refused:
                messages.error(request, f"{work.ref} was not handed over: {why}")
        elif action == "revoke_token":
            number = request.POST.get("token", "")
            token = get_object_or_404(ApiToken, pk=int(number) if number.isdigit() else 0,
                                      user=user)  # fmt: skip
            tokens.revoke(token, by=by)
            messages.success(request, f"Token {token.prefix}… of {username} is revoked")
        elif action == "reactivate":
            people.reactivate(username, by=by)
            messages.success(request, f"{username} may sign in again")
        else:
            messages.error(request, "Choose what to change")
    except Invalid as invalid:
        messages.error(request, str(invalid))
    return redirect("person", username=username)
