"""/api/v1/webhooks: register an endpoint; its signing secret is shown once."""

from __future__ import annotations

from ninja import Router, Schema, Status

from waiverdesk.api.api import ERRORS
from waiverdesk.directory.api import require_admin

from . import services

router = Router(tags=["webhooks"])


class WebhookIn(Schema):
    url: str
    events: list[str] = []


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    secret: str


@router.post("", response={201: WebhookOut, **ERRORS})
def register(request, body: WebhookIn):
    require_admin(request)
    hook = services.register(body.url, body.events, request.user)
    return Status(
        201, {"id": hook.id, "url": hook.url, "events": hook.events, "secret": hook.secret}
    )
