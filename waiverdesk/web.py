"""What every page of the web UI shares: the navigation, and refusals shown as pages."""

from __future__ import annotations

import functools
from urllib.parse import urlparse

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory.services import roles_of
from waiverdesk.policies import services as policies
from waiverdesk.waivers import access
from waiverdesk.waivers.models import Task
from waiverdesk.waivers.request_form import label_of
from waiverdesk.waivers.services import NotFound, startable_types

# Who sees the list of all requests (each sees there what `access` lets them see).
SEES_ALL = frozenset({"auditor", "admin", "control_owner", "policy_admin"})

OVERSIGHT_ROLES = frozenset({"control_owner", "auditor", "admin", "policy_admin"})


def sees_dashboard(user) -> bool:
    """Approvers of any tier of the active policy, control owners and oversight roles."""
    approvers = policies.compiled(policies.active_version()).approver_roles
    return bool(roles_of(user) & (OVERSIGHT_ROLES | set(approvers)))


def sees_governance(user) -> bool:
    return bool(roles_of(user) & OVERSIGHT_ROLES)


def require_governance(user) -> None:
    """Refuse (Denied) anyone but control owners and oversight roles."""
    if not sees_governance(user):
        raise Denied("missing_role", "governance is for control owners and oversight")


def sees_patterns(user) -> bool:
    """Pattern findings span every request: compliance, policy owners and admins."""
    return bool(roles_of(user) & {"auditor", "policy_admin", "admin"})


def show_refusal(request: HttpRequest, refused: Invalid | Denied) -> None:
    """A refusal shown on the next page: each problem with its field, or the reason (and a
    refusal the service did not record is recorded here)."""
    if isinstance(refused, Invalid):
        for p in refused.problems:
            messages.error(request, f"{label_of(p.field)}: {p.message}")
    else:
        if not refused.audited:
            audit.refused_at_door("web", request, refused.code, refused.message)
        messages.error(request, refused.message)


def approves(user) -> bool:
    """Whether `user` holds a role that decides a tier of the active policy."""
    approvers = policies.compiled(policies.active_version()).approver_roles
    return bool(roles_of(user) & set(approvers))


def sees_audit_trail(user) -> bool:
    return bool(roles_of(user) & {"auditor", "admin"})


def has_tasks(user) -> bool:
    roles = roles_of(user)
    if roles & {"implementer", "auditor", "admin"}:
        return True
    return Task.objects.filter(owner=user, status=Task.State.OPEN).exists()


def decidable_count(user) -> int:
    """How many steps `user` may decide now (counted once a request: the inbox page, which
    counts them anyway, leaves its count here)."""
    if getattr(user, "_decidable_count", None) is None:
        user._decidable_count = access.decidable_by(user).count()
    return user._decidable_count


def navigation(request: HttpRequest) -> dict:
    """The links of the header that the person may use, with the number of steps waiting
    for their decision."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    roles = roles_of(user)
    deciding = approves(user)
    return {
        "nav": {
            "requests": bool(roles & {"requester", "admin"}) or user.requested_waivers.exists(),
            "new_request": bool(startable_types(user)),
            "inbox": deciding,
            "implementation": has_tasks(user),
            "all_requests": bool(roles & SEES_ALL),
            "audit": sees_audit_trail(user),
            "dashboard": sees_dashboard(user),
            "governance": sees_governance(user),
            "billing": bool(roles & {"finance", "auditor", "admin"}),
            "people": "admin" in roles,
            "privacy": bool(roles & {"admin", "auditor"}),
        },
        "inbox_count": decidable_count(user) if deciding else 0,
    }


def content_security_policy(get_response):
    """Middleware: every page carries the Content-Security-Policy of settings; with single
    sign-on, forms may also lead to the identity provider (sign-out goes on to end its
    session there, and browsers apply form-action to where a form's answer redirects)."""

    def middleware(request: HttpRequest):
        response = get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if settings.OIDC_ISSUER:
            issuer = urlparse(settings.OIDC_ISSUER)
            origin = f"{issuer.scheme}://{issuer.netloc}"
            policy = policy.replace("form-action 'self'", f"form-action 'self' {origin}")
        response.setdefault("Content-Security-Policy", policy)
        return response

    return middleware


def back_to(request: HttpRequest, fallback: str):
    """Redirect to the form's `back` path when it is a path of this site, else to `fallback`."""
    back = request.POST.get("back") or request.GET.get("back") or ""
    local = back.startswith("/") and url_has_allowed_host_and_scheme(back, allowed_hosts=None)
    return redirect(back if local else fallback)


def page(view):
    """A signed-in page: an unknown or hidden waiver is a 404, a refused action a 403 page."""

    @login_required
    @functools.wraps(view)
    def inner(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound:
            audit.refused_at_door("web", request, "not_found", "not found, or not visible")
            raise Http404("no such request") from None
        except Denied as denied:
            if not denied.audited:
                audit.refused_at_door("web", request, denied.code, denied.message)
            return render(request, "refused.html", {"message": denied.message}, status=403)

    return inner


@page
def home(request: HttpRequest):
    """Each role starts where its day's work is: approvers with something to decide in their
    inbox, auditors and admins in all requests, approvers in their inbox, control owners in
    governance, implementers on the board, requesters in their requests."""
    user = request.user
    roles = roles_of(user)
    if approves(user) and access.decidable_by(user).exists():
        return redirect("inbox")
    if roles & {"auditor", "admin"}:
        return redirect("all-requests")
    if approves(user):
        return redirect("inbox")
    if "control_owner" in roles:
        return redirect("governance")
    if "implementer" in roles:
        return redirect("implementation")
    return redirect("my-requests")
