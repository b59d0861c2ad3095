"""Idempotency-Key on API POSTs: a retry gets the first response, never a second effect.

The key is taken (committed, so that a concurrent retry is told 409 "in progress"); then the
request's work and its recorded response commit together, in one transaction: either both
are stored or neither. A request that fails (5xx, the database lost, even at commit)
releases its key, so that a retry runs; should even that fail, a key still in progress after
IDEMPOTENCY_ABANDONED_SECONDS (its server died) is free again. A key is kept for 24 hours
(IDEMPOTENCY_KEY_HOURS). So a retry is never refused for ever, nor done twice."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse

from waiverdesk import clock
from waiverdesk.audit import services as audit

from . import services
from .errors import unavailable
from .models import IdempotencyRecord


def _error(status: int, code: str, message: str) -> HttpResponse:
    body = {"errors": [{"field": "Idempotency-Key", "code": code, "message": message}]}
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


class IdempotencyMiddleware:
    """Records the first response to each (user, key); replays it, or refuses a clash."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get("Idempotency-Key", "")
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        auth = request.headers.get("Authorization", "")
        token = services.authenticate(auth.removeprefix("Bearer ").strip())
        if token is None:
            return self.get_response(request)  # the API answers 401
        if len(key) > 200:
            return _error(400, "invalid", "an Idempotency-Key has at most 200 characters")
        fingerprint = hashlib.sha256(
            b"%s %s\n%s" % (request.method.encode(), request.path.encode(), request.body)
        ).hexdigest()
        now = clock.now()
        record = _take(token.user, key, fingerprint, now)
        if isinstance(record, HttpResponse):
            return record
        try:
            with audit.atomic():  # its audit entries are chained at its end, as a service's
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)  # nothing is kept of a failed request
                else:
                    IdempotencyRecord.objects.filter(pk=record.pk).update(
                        status_code=response.status_code, response=response.content.decode()
                    )
        except DatabaseError:  # the connection was lost, at the latest at commit
            _release(record)
            return unavailable(request)
        if response.status_code >= 500:
            _release(record)  # let the client try again
        return response


def _take(user, key: str, fingerprint: str, now: datetime) -> IdempotencyRecord | HttpResponse:
    """This request's record of the key, or the answer to give instead: the first response
    replayed, or a refusal."""
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    user=user, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:
            pass
        first = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if first is None:
            continue  # released meanwhile: take it
        if first.created_at < now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS):
            IdempotencyRecord.objects.filter(pk=first.pk, created_at=first.created_at).delete()
            continue  # expired: the key is new again
        if first.fingerprint != fingerprint:
            return _error(422, "key_reused", "this key was used with another request")
        if first.status_code is None:
            abandoned = now - timedelta(seconds=settings.IDEMPOTENCY_ABANDONED_SECONDS)
            if first.created_at < abandoned and IdempotencyRecord.objects.filter(
                pk=first.pk, status_code=None, created_at=first.created_at
            ).update(created_at=now):
                first.created_at = now
                return first  # its request died without a word: this retry runs
            return _error(409, "in_progress", "the first request with this key is running; "
                          "try again in a few seconds")  # fmt: skip
        replay = HttpResponse(first.response, status=first.status_code,
                              content_type="application/json")  # fmt: skip
        replay["Idempotent-Replayed"] = "true"
        return replay
    return _error(409, "in_progress", "the key is busy; try again in a few seconds")


def _release(record: IdempotencyRecord) -> None:
    """Free the key of a request that did nothing, on a new connection if the one it had was
    lost (a request whose commit did happen has its response recorded: that stays)."""
    for _ in range(2):
        try:
            IdempotencyRecord.objects.filter(pk=record.pk, status_code=None).delete()
            return
        except DatabaseError:
            connection.close()  # the next query opens a new one


def forget_expired(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """The worker's job: drop keys older than IDEMPOTENCY_KEY_HOURS."""
    old = IdempotencyRecord.objects.filter(
        created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    )
    count = old.count() if dry_run else old.delete()[0]
    return (
        [("idempotency keys", f"{'would forget' if dry_run else 'forgot'} {count}")]
        if count
        else []
    )
