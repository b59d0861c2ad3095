"""The API tokens page: each user creates (and sees once) and revokes their own tokens."""

from __future__ import annotations

from datetime import datetime, time

from django.contrib import messages
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.directory.services import roles_of
from waiverdesk.web import page

from . import services
from .models import ApiToken


@page
def tokens(request: HttpRequest):
    """The user's tokens; a POST creates one and shows it, this once."""
    user = request.user
    admin = "admin" in roles_of(user)  # the admin and scim scopes act only for admins
    scopes = [s for s in services.SCOPES if admin or s not in ("admin", "scim")]
    context: dict = {"scopes": scopes, "problems": []}
    if request.method == "POST":
        expires = request.POST.get("expires", "").strip()
        day = parse_date(expires) if expires else None
        try:
            if expires and day is None:
                raise Invalid([Problem("expires", "invalid", "give the expiry as YYYY-MM-DD")])
            chosen = [s for s in request.POST.getlist("scopes") if s in scopes]
            _token, raw = services.create_token(
                user,
                request.POST.get("name", "").strip(),
                chosen or None,
                datetime.combine(day, time.min, clock.now().tzinfo) if day else None,
                by=user.username,
            )
            context["raw"] = raw
        except Invalid as invalid:
            context["problems"] = invalid.problems
    context["tokens"] = ApiToken.objects.filter(user=user)
    status = 422 if context["problems"] else 200
    return render(request, "api/tokens.html", context, status=status)


@page
@require_POST
def revoke(request: HttpRequest, pk: int):
    """Revoke one of the user's own tokens; anyone else's is a 404."""
    token = ApiToken.objects.filter(pk=pk, user=request.user).first()
    if token is None:
        raise Http404("no such token")
    services.revoke(token, request.user.username)
    messages.success(request, f"Token {token.name} ({token.prefix}…) is revoked.")
    return redirect("tokens")
