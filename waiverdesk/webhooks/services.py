"""Registering webhook endpoints, and refusing ones inside the private network."""

from __future__ import annotations

import base64
import ipaddress
import secrets
import socket
from datetime import datetime
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.notifications.events import require_known

from .models import Webhook


class PrivateAddress(Exception):
    """A webhook URL that leads into the private network."""


def refuse_private_address(url: str) -> None:
    """Raise PrivateAddress when `url`'s host resolves to a private, loopback, link-local or
    reserved address, unless WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS=1: a webhook must not be a
    way into the network the server runs in."""
    if settings.ALLOW_PRIVATE_WEBHOOKS:
        return
    host = urlparse(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return  # nothing to judge yet; a delivery to it fails and is retried
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise PrivateAddress(
                f"'{host}' resolves to {ip}, a private address "
                "(set WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS=1 to allow it)"
            )


def register(url: str, events: list[str], by: User, now: datetime | None = None) -> Webhook:
    """Register an endpoint; its signing secret (Standard Webhooks `whsec_…`) is returned once."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise Invalid([Problem("url", "invalid", "must be an http:// or https:// address")])
    require_known(events)
    try:
        refuse_private_address(url)
    except PrivateAddress as refused:
        raise Invalid([Problem("url", "private_address", str(refused))]) from None
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
