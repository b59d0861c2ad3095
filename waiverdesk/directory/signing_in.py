"""Signing in as ASVS level 2 expects: failed attempts throttled per account and per address
(django-axes) and audited, with every sign-in and sign-out; passwords that are not the user
name over again; user names as people read them (NFKC), none a look-alike of another."""

from __future__ import annotations

import functools
import unicodedata
from datetime import timedelta

from axes.signals import user_locked_out
from confusable_homoglyphs import confusables
from django.conf import settings
from django.contrib.auth import signals
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.shortcuts import redirect, render

from waiverdesk import clock
from waiverdesk.audit import services as audit

from .models import Profile


def normal(username: str) -> str:
    """A user name as it is stored and compared: NFKC, so that look-alike encodings of one
    name (a full-width 'ｒｉｔａ', a ligature) are the same name."""
    return unicodedata.normalize("NFKC", username or "").strip()


def skeleton(username: str) -> str:
    """What a name looks like: each character as the first of the characters it can be
    mistaken for (Unicode TR39 confusables), case ignored."""
    return "".join(_looks_like(char) for char in normal(username).casefold())


@functools.lru_cache(maxsize=8192)
def _looks_like(char: str) -> str:
    """The first of the characters `char` can be mistaken for (itself included); the table
    is fixed, so each character is looked up once."""
    found = confusables.is_confusable(char, greedy=True) or []
    return min([char, *(h["c"] for f in found for h in f["homoglyphs"] if len(h["c"]) == 1)])


class NotTheUsernameRepeated:
    """A password that is the user name, once or over and over ("ritarita"), is refused."""

    def validate(self, password: str, user=None) -> None:
        name = (getattr(user, "username", "") or "").casefold()
        typed = (password or "").casefold()
        if (
            name
            and typed
            and len(typed) % len(name) == 0
            and name * (len(typed) // len(name)) == typed
        ):
            raise ValidationError(
                "The password may not be the user name, once or repeated.",
                code="password_is_username",
            )

    def get_help_text(self) -> str:
        return "Your password may not be your user name, once or repeated."


def client_address(request) -> str:
    """The client's address: behind WAIVERDESK_PROXY_COUNT proxies, the one they saw."""
    forwarded = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [h for h in forwarded if h]
    if settings.PROXY_COUNT and len(forwarded) >= settings.PROXY_COUNT:
        return forwarded[-settings.PROXY_COUNT]
    return request.META.get("REMOTE_ADDR", "")


def username_of(request, credentials) -> str:
    """The account a sign-in attempt is for, as it is stored (for throttling)."""
    typed = (credentials or {}).get("username") or request.POST.get("username", "")
    return normal(typed)[:150]


def locked_out(request, credentials, *args, **kwargs):
    """The sign-in page, saying when sign-in may be tried again (429)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    again = clock.now() + settings.AXES_COOLOFF_TIME
    message = (
        f"Too many failed sign-ins for this account or from this address. Try again after "
        f"{again:%H:%M} UTC (in {minutes} minutes), or ask an administrator to unlock it."
    )
    response = render(request, "sign_in.html", {"locked": message}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


def _record(actor: str, action: str, request, **payload) -> None:
    address = client_address(request) if request is not None else ""
    with transaction.atomic():
        audit.append(actor or "anonymous", action, None, {"address": address, **payload},
                     object_type="user", object_ref=actor or "anonymous")  # fmt: skip


@receiver(signals.user_logged_in)
def _signed_in(sender, request, user, **kwargs) -> None:
    _record(user.username, "user.signed_in", request)
    if (
        request is not None
        and Profile.objects.filter(user=user, must_change_password=True).exists()
    ):
        request.session["must_change_password"] = True


# Where a person who must first choose a password may still go.
_OPEN_WHILE_CHANGING = ("/password/", "/sign-out/", "/static/", "/api/", "/scim/", "/healthz")


def password_change_first(get_response):
    """Middleware: someone signed in with a password everyone knows (the demo's, outside a
    sandbox) chooses their own before anything else."""

    def middleware(request):
        if request.session.get("must_change_password") and not request.path.startswith(
            _OPEN_WHILE_CHANGING
        ):
            return redirect("password-change")
        return get_response(request)

    return middleware


@receiver(signals.user_logged_out)
def _signed_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        _record(user.username, "user.signed_out", request)


@receiver(signals.user_login_failed)
def _failed(sender, credentials, request=None, **kwargs) -> None:
    """A failed attempt, counted with its repeats for the same account and address within a
    minute (audit.refusal) so that a guessing attack does not flood the trail."""
    name = username_of(request, credentials) if request is not None else ""
    address = client_address(request) if request is not None else ""
    audit.refusal(name or "anonymous", "user.sign_in_failed", "user", name or "anonymous",
                  {"address": address}, window=timedelta(minutes=1))  # fmt: skip


@receiver(user_locked_out)
def _locked(sender, request, username, ip_address, **kwargs) -> None:
    name = normal(username or "")
    audit.refusal(name or "anonymous", "user.locked_out", "user", name or "anonymous",
                  {"address": ip_address or ""}, window=timedelta(minutes=1))  # fmt: skip


class PasswordBackend(ModelBackend):
    """Django's password sign-in, turned off by WAIVERDESK_OIDC_ONLY=1 for everyone but the
    break-glass account (every door that checks a password comes through here)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if settings.OIDC_ONLY and normal(username or "") != settings.BREAK_GLASS_USER:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class SignIn(auth_views.LoginView):
    """The sign-in page: the company account first when single sign-on is configured, and
    the password form (for the break-glass account alone under WAIVERDESK_OIDC_ONLY)."""

    template_name = "sign_in.html"

    def get_context_data(self, **kwargs):
        from . import oidc

        return {**super().get_context_data(**kwargs), "sso": oidc.configured(),
                "oidc_only": settings.OIDC_ONLY}  # fmt: skip


class SignOut(auth_views.LogoutView):
    """Sign-out ends the session here and, where the provider offers it, the provider's."""

    next_page = "sign-in"

    def post(self, request, *args, **kwargs):
        from . import oidc

        id_token = request.session.get("oidc_id_token", "")
        response = super().post(request, *args, **kwargs)
        return oidc.sign_out_at_provider(request, id_token) or response
