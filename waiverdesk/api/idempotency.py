"""Idempotency-Key on API POSTs: a retry gets the first response, never a second effect."""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

from waiverdesk import clock

from . import services
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
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=token.user, key=key, fingerprint=fingerprint, created_at=clock.now()
                )
        except IntegrityError:
            first = IdempotencyRecord.objects.get(user=token.user, key=key)
            if first.fingerprint != fingerprint:
                return _error(422, "key_reused", "this key was used with another request")
            if first.status_code is None:
                return _error(409, "in_progress", "the first request with this key is running")
            replay = HttpResponse(
                first.response, status=first.status_code, content_type="application/json"
            )
            replay["Idempotent-Replayed"] = "true"
            return replay
        response = self.get_response(request)
        if response.status_code >= 500:
            record.delete()  # nothing was done: let the client try again
        else:
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                status_code=response.status_code, response=response.content.decode()
            )
        return response
