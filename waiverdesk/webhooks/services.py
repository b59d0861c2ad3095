"""Registering webhook endpoints, and refusing ones inside the private network."""

from __future__ import annotations

import base64
import contextlib
import heapq
import http.client
import ipaddress
import itertools
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlparse, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.notifications.events import require_known
from waiverdesk.notifications.models import Message

from .models import Webhook


class PrivateAddress(Exception):
    """A webhook URL that leads into the private network, or whose host does not resolve."""


class DeliveryFailed(Exception):
    """An endpoint that did not take the message: an error status, or a redirect."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL's parts, and the checked addresses to connect to."""

    scheme: str
    host: str  # as sent in Host and, for https, in SNI and the certificate check
    port: int
    path: str
    addresses: tuple[str, ...]


def target(url: str) -> Target:
    """The URL's host (percent-decoded, IDNA-encoded) and every address it resolves to; each
    must be public unless WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS=1, and a host that does not
    resolve is refused too (PrivateAddress): a webhook must not be a way into the network
    the server runs in. Resolution is the system's, so decimal, octal and hex forms of an
    address are judged as the connection would read them."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        raise PrivateAddress("only http:// and https:// addresses without credentials")
    try:
        host = unquote(parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except (UnicodeError, ValueError):
        raise PrivateAddress(f"'{parts.netloc}' is not a host name and port") from None
    if not host:
        raise PrivateAddress("the address names no host")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise PrivateAddress(f"'{host}' does not resolve") from None
    addresses = tuple(dict.fromkeys(info[4][0] for info in found))
    if not settings.ALLOW_PRIVATE_WEBHOOKS:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not public(ip):
                raise PrivateAddress(
                    f"'{host}' resolves to {ip}, a private address "
                    "(set WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS=1 to allow it)"
                )
    path = parts.path or "/"
    return Target(parts.scheme, host, port, path + (f"?{parts.query}" if parts.query else ""),
                  addresses)  # fmt: skip


# Not global, though Python's table does not say so: IETF protocol assignments (Oracle's
# metadata service is 192.0.0.192) and IPv4-compatible IPv6 (deprecated).
NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("::/96"))
# IPv6 prefixes that carry an IPv4 address in their last 32 bits: IPv4-translated and NAT64
# (DNS64 answers with these for IPv4-only hosts): the IPv4 address is judged.
CARRY_IPV4 = tuple(
    ipaddress.ip_network(n) for n in ("::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a connection to `ip` leaves the private network: a global unicast address, and
    so is any IPv4 address it carries (mapped, translated, NAT64, 6to4, Teredo)."""
    if not ip.is_global or ip.is_multicast or any(ip in n for n in NOT_GLOBAL):
        return False
    if ip.version == 4:
        return True
    carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if any(ip in n for n in CARRY_IPV4):
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(public(v4) for v4 in carried if v4 is not None)


def refuse_private_address(url: str) -> None:
    """Raise PrivateAddress unless `url` leads to public addresses only (see `target`); with
    WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS=1 the host need not resolve yet."""
    if not settings.ALLOW_PRIVATE_WEBHOOKS:
        target(url)


class _Pinned(http.client.HTTPConnection):
    """A connection to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """The same over TLS, the certificate checked against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float | None = None) -> int:
    """POST `body` to `url`, connecting to an address just checked; return the status.

    The whole exchange has `timeout` seconds (WEBHOOK_TIMEOUT): a receiver that answers
    slowly, or drips its answer, is cut off then. No proxy from the environment is used and
    no redirect is followed: a 3xx is a failed delivery (DeliveryFailed, with its
    Location), as is any status from 300 up."""
    timeout = timeout or settings.WEBHOOK_TIMEOUT
    where = target(url)
    connection_class = _PinnedTLS if where.scheme == "https" else _Pinned
    connection = connection_class(where.host, where.port, where.addresses[0], timeout)
    cut = threading.Event()
    deadline = _DEADLINES.watch(timeout, lambda: _cut(connection, cut))
    try:
        connection.request("POST", where.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)
    except (OSError, http.client.HTTPException) as error:
        if cut.is_set() or isinstance(error, TimeoutError):
            raise TimeoutError(f"no answer within {timeout:g} s") from None
        raise
    finally:
        _DEADLINES.forget(deadline)
        connection.close()
    if 300 <= response.status < 400:
        location = response.getheader("Location", "")
        raise DeliveryFailed(response.status, f"redirected ({response.status}) to {location!r}; "
                             "redirects are not followed")  # fmt: skip
    if response.status >= 300:
        raise DeliveryFailed(response.status, f"the endpoint answered {response.status}")
    return response.status


class _Deadlines:
    """One thread that runs each registered call when its time is up, unless it was
    forgotten first (cheaper than a timer thread for every delivery)."""

    def __init__(self):
        self.due: list[tuple[float, int, object]] = []
        self.ticket = itertools.count()
        self.forgotten: set[int] = set()
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    def watch(self, seconds: float, call) -> int:
        ticket = next(self.ticket)
        with self.changed:
            heapq.heappush(self.due, (time.monotonic() + seconds, ticket, call))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True)
                self.thread.start()
            self.changed.notify()
        return ticket

    def forget(self, ticket: int) -> None:
        with self.changed:
            self.forgotten.add(ticket)

    def _run(self) -> None:
        while True:
            with self.changed:
                while self.due and self.due[0][1] in self.forgotten:
                    self.forgotten.discard(heapq.heappop(self.due)[1])
                if not self.due:
                    self.changed.wait()
                    continue
                when, ticket, call = self.due[0]
                if when > time.monotonic():
                    self.changed.wait(when - time.monotonic())
                    continue
                heapq.heappop(self.due)
            call()


_DEADLINES = _Deadlines()


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """End a delivery that has had its time: whatever it waits for fails at once."""
    cut.set()
    with contextlib.suppress(OSError, AttributeError):  # not connected yet, or closed
        connection.sock.shutdown(socket.SHUT_RDWR)


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


def disable(hook: Webhook, by: User, reason: str = "", now: datetime | None = None) -> Webhook:
    """Stop sending to an endpoint (what is queued for it is not sent; registering it again
    gives it a new secret). Audited; disabling one already disabled records nothing."""
    now = now or clock.now()
    reason = (reason or f"disabled by {by.username}")[:200]
    with transaction.atomic():
        live = Webhook.objects.filter(pk=hook.pk, active=True)
        if live.update(active=False, disabled_reason=reason):
            hook.active, hook.disabled_reason = False, reason
            dropped = Message.objects.filter(webhook=hook, state=Message.State.PENDING).update(
                state=Message.State.DEAD, last_error="not sent: the endpoint was disabled"
            )
            said = {"url": hook.url, "reason": reason, "not_sent": dropped}
            audit.append(by.username, "webhook.disabled", hook, said, at=now)
    return hook
