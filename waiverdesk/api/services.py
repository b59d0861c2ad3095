"""API tokens: created shown once, stored hashed, scoped, expiring, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Invalid, Problem

from .models import ApiToken

PREFIX = "wd_"
SCOPES = tuple(ApiToken.Scope.values)


def digest(raw: str) -> str:
    """What is stored of a token: a 256-bit random token needs no salt, its SHA-256 is enough."""
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    user: User,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    by: str = "system",
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user`; return it with the raw token, which is never stored."""
    now = now or clock.now()
    scopes = sorted(set(scopes or ["read", "write", "decide"]))
    problems = []
    if unknown := sorted(set(scopes) - set(SCOPES)):
        problems.append(
            Problem(
                "scopes", "unknown_scope", f"no scope {', '.join(unknown)}; use {', '.join(SCOPES)}"
            )
        )
    if expires_at is not None and expires_at <= now:
        problems.append(Problem("expires", "in_past", "the expiry must be in the future"))
    if not user.is_active:
        problems.append(Problem("user", "inactive", f"{user.username} is deactivated"))
    if problems:
        raise Invalid(problems)
    raw = PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name or "token",
            prefix=raw[:10],
            digest=digest(raw),
            scopes=scopes,
            created_at=now,
            expires_at=expires_at,
        )
        audit.append(
            by,
            "token.created",
            token,
            {
                "user": user.username,
                "name": token.name,
                "scopes": scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
            at=now,
        )
    return token, raw


def authenticate(raw: str, now: datetime | None = None) -> ApiToken | None:
    """The live token for `raw`: not revoked, not expired, its user active; else None."""
    if not raw or not raw.startswith(PREFIX):
        return None
    now = now or clock.now()
    token = ApiToken.objects.select_related("user").filter(digest=digest(raw)).first()
    if (
        token is None
        or token.revoked_at is not None
        or (token.expires_at is not None and now >= token.expires_at)
        or not token.user.is_active
    ):
        return None
    # Written at most once a minute, so that reads stay reads.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def revoke(token: ApiToken, by: str, now: datetime | None = None) -> None:
    now = now or clock.now()
    with transaction.atomic():
        if ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now):
            audit.append(by, "token.revoked", token, {"user": token.user.username}, at=now)
