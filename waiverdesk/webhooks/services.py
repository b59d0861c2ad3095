"""Registering webhook endpoints; delivery comes with the worker."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from urllib.parse import urlparse

from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Invalid, Problem

from .models import Webhook


def register(url: str, events: list[str], by: User, now: datetime | None = None) -> Webhook:
    """Register an endpoint; its signing secret (Standard Webhooks `whsec_…`) is returned once."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise Invalid([Problem("url", "invalid", "must be an http:// or https:// address")])
    now = now or clock.now()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    with transaction.atomic():
        hook = Webhook.objects.create(
            url=url, events=sorted(set(events)), secret=secret, created_by=by, created_at=now
        )
        audit.append(
            by.username, "webhook.registered", hook, {"url": url, "events": hook.events}, at=now
        )
    return hook
