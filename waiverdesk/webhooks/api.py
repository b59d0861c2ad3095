"""/api/v1/webhooks: register an endpoint; its signing secret is shown once."""

from __future__ import annotations

from ninja import Router, Schema, Status
from pydantic import Field

from waiverdesk.api.api import ERRORS
from waiverdesk.api.documented import enum
from waiverdesk.directory.api import require_admin
from waiverdesk.notifications.events import EVENTS

from . import services

router = Router(tags=["webhooks"])


class WebhookIn(Schema):
    url: str
    events: list[str] = Field(default_factory=list, json_schema_extra=enum(lambda: EVENTS))


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    secret: str


@router.post("", operation_id="createWebhook", response={201: WebhookOut, **ERRORS})
def register(request, body: WebhookIn):
    require_admin(request)
    hook = services.register(body.url, body.events, request.user)
    return Status(
        201, {"id": hook.id, "url": hook.url, "events": hook.events, "secret": hook.secret}
    )
