"""Local passwords, for deployments without an identity provider: a person changes their
own (the old one first), or asks for a reset link by email (Django's signed, single-use
token; the answer never says whether an account has that address). Every new password goes
through `services.set_password` (the validators, the audit entry); the email goes through
the outbox in the same transaction. Under WAIVERDESK_OIDC_ONLY only the break-glass account
has a password to change or reset."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import redirect, render
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from waiverdesk import clock
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.notifications import services as notify
from waiverdesk.web import page

from . import services


def _passwords_here(user: User | None) -> bool:
    return not settings.OIDC_ONLY or (user is not None
                                      and user.username == settings.BREAK_GLASS_USER)  # fmt: skip


@page
def change(request: HttpRequest):
    """Change one's own password: the current one, then the new one twice."""
    user, problems = request.user, []
    if not _passwords_here(user):
        return render(request, "directory/password.html", {"off": True})
    if request.method == "POST":
        new, again = request.POST.get("new", ""), request.POST.get("again", "")
        if not user.check_password(request.POST.get("current", "")):
            problems.append(Problem("current", "wrong", "this is not your current password"))
        if new != again:
            problems.append(Problem("again", "different", "the two new passwords differ"))
        if not problems:
            try:
                services.set_password(user.username, new, by=user.username)
            except Invalid as invalid:
                problems = invalid.problems
            else:
                user.refresh_from_db()
                update_session_auth_hash(request, user)  # this session stays; others end
                request.session.pop("must_change_password", None)
                messages.success(request, "Your password is changed; other sessions ended.")
                return redirect("settings")
    return render(request, "directory/password.html",
                  {"problems": problems, "problem_at": {p.field: p.message for p in problems},
                   "first": request.session.get("must_change_password", False)},
                  status=422 if problems else 200)  # fmt: skip


def reset(request: HttpRequest):
    """Ask for a reset link by email; the same answer whether or not the address is known."""
    if request.method == "POST":
        address = request.POST.get("email", "").strip()[:254]
        for user in User.objects.filter(email__iexact=address, is_active=True) if address else []:
            if _passwords_here(user):
                _send_link(request, user)
        return render(request, "directory/reset.html", {"sent": True})
    return render(request, "directory/reset.html", {})


def _send_link(request: HttpRequest, user: User) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    link = f"{settings.BASE_URL}/password/reset/{uid}/{default_token_generator.make_token(user)}/"
    with transaction.atomic():
        notify.queue_email(
            user.email, "Reset your waiverdesk password",
            f"Someone (we hope you) asked to reset the password of {user.username}.\n\n"
            f"Choose a new one here, within {settings.PASSWORD_RESET_TIMEOUT // 3600} hours; "
            f"the link works once:\n{link}\n\nIf it was not you, ignore this email.",
            "user.password_reset", clock.now(), object_ref=user.username)  # fmt: skip


def reset_confirm(request: HttpRequest, uid: str, token: str):
    """The link from the email: a new password, twice; the link works once."""
    try:
        user = User.objects.filter(pk=int(force_str(urlsafe_base64_decode(uid))),
                                   is_active=True).first()  # fmt: skip
    except (ValueError, TypeError, OverflowError):
        user = None
    if user is None or not default_token_generator.check_token(user, token) or not (
        _passwords_here(user)):  # fmt: skip
        return render(request, "directory/reset.html", {"expired": True}, status=400)
    problems = []
    if request.method == "POST":
        new, again = request.POST.get("new", ""), request.POST.get("again", "")
        if new != again:
            problems.append(Problem("again", "different", "the two new passwords differ"))
        else:
            try:
                services.set_password(user.username, new, by=user.username)
            except Invalid as invalid:
                problems = invalid.problems
            else:
                messages.success(request, "Your password is set: sign in with it.")
                return redirect("sign-in")
    return render(request, "directory/reset_confirm.html",
                  {"person": user, "problems": problems,
                   "problem_at": {p.field: p.message for p in problems}},
                  status=422 if problems else 200)  # fmt: skip
