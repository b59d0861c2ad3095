"""Telling people and systems what happened: messages written to the outbox in the
transaction of the change, then delivered by the worker (email over SMTP, webhooks signed
per Standard Webhooks), retried with backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.webhooks import services as webhooks
from waiverdesk.webhooks.models import Webhook

from .events import EVENTS, require_known
from .models import Message, Preference

RETRY_DELAYS = [timedelta(seconds=s) for s in (10, 60, 300, 1800, 7200, 21600)]
LEASE = timedelta(minutes=5)


def publish(
    event: str,
    waiver: Any,
    data: dict[str, Any],
    to: list[User | None],
    now: datetime,
) -> None:
    """Queue `event` about `waiver` for every subscribed webhook and, by email, for the people
    in `to` who have not muted it. Call it inside the transaction of the change."""
    publish_many(event, [(waiver, data, to)], now)


def publish_many(event: str, items: list[tuple[Any, dict[str, Any], list]], now: datetime) -> None:
    """`publish` for many waivers at once: (waiver, data, people) each."""
    hooks = [h for h in Webhook.objects.filter(active=True) if not h.events or event in h.events]
    people = {u.pk: u for u in readers([u for _w, _d, to in items for u in to], event)}
    messages = []
    for waiver, data, to in items:
        payload = {
            "reference": waiver.reference,
            "status": waiver.status,
            "type": waiver.type,
            "customer": waiver.customer.external_id,
            "start": waiver.start.isoformat(),
            "end": waiver.end.isoformat(),
            **data,
        }
        body = json.dumps({"type": event, "timestamp": now.isoformat(), "data": payload},
                          sort_keys=True)  # fmt: skip
        messages += [_message(Message.Channel.WEBHOOK, event, waiver, now, webhook=h, body=body)
                     for h in hooks]  # fmt: skip
        told = {u.pk: u for u in to if u and u.pk in people}
        if not told:
            continue
        context = {
            "waiver": waiver,
            "sentence": EVENTS[event],
            "data": data,
            "url": f"{settings.BASE_URL}/requests/{waiver.reference}/",
        }
        text = render_to_string("notifications/email.txt", context)  # the same for every reader
        messages += [
            _message(Message.Channel.EMAIL, event, waiver, now, recipient=user.email,
                     subject=f"{waiver.reference} {EVENTS[event]}", body=text)
            for user in told.values()
        ]  # fmt: skip
    Message.objects.bulk_create(messages)


def _message(channel: str, event: str, waiver: Any, now: datetime, **fields) -> Message:
    return Message(
        channel=channel,
        event=event,
        object_ref=waiver.reference,
        message_id=f"msg_{uuid.uuid4().hex}",
        next_attempt_at=now,
        created_at=now,
        **fields,
    )


def queue_email(
    to: str,
    subject: str,
    body: str,
    event: str,
    now: datetime,
    object_ref: str = "",
    attachment: tuple[str, bytes] = ("", b""),
) -> None:
    """Queue one email outside the event list (an answer to an emailed request, a report),
    with a file (name, content) if given."""
    Message.objects.create(
        channel=Message.Channel.EMAIL,
        event=event,
        object_ref=object_ref,
        message_id=f"msg_{uuid.uuid4().hex}",
        recipient=to,
        subject=subject[:200],
        body=body,
        attachment_name=attachment[0],
        attachment=attachment[1],
        next_attempt_at=now,
        created_at=now,
    )


def readers(people, event: str) -> list[User]:
    """Those of `people` who are emailed about `event`: active, with an address, and not
    having muted it (one query for their preferences)."""
    people = {u.pk: u for u in people if u and u.is_active and u.email}
    muted = {p.user_id for p in Preference.objects.filter(user_id__in=people) if event in p.muted}
    return [u for pk, u in people.items() if pk not in muted]


def muted(user: User) -> list[str]:
    """The events `user` is not emailed about."""
    preference = Preference.objects.filter(user=user).first()
    return sorted(preference.muted) if preference else []


def set_muted(
    user: User, events: list[str], mute: bool = True, only: bool = False, by: str = "system"
) -> list[str]:
    """Mute (or unmute) `events` for `user`; with `only`, exactly `events` are muted.
    Return the events now muted."""
    require_known(events)
    with transaction.atomic():
        preference, _ = Preference.objects.select_for_update().get_or_create(user=user)
        chosen = set() if only else set(preference.muted)
        preference.muted = sorted(chosen | set(events) if mute else chosen - set(events))
        preference.save()
        audit.append(
            by, "notifications.muted", user, {"muted": preference.muted},
            object_type="user", object_ref=user.username,
        )  # fmt: skip
    return preference.muted


def holders(role: str) -> list[User]:
    """The active people who hold `role`."""
    return list(User.objects.filter(groups__name=role, is_active=True))


def deliver(now: datetime | None = None, limit: int = 200) -> Counter:
    """Send the messages that are due, each claimed by one worker; count what happened."""
    now = now or clock.now()
    outcome: Counter = Counter()
    batch = _claim(now, limit)
    if not batch:
        return outcome
    mail = get_connection()
    for message in batch:
        try:
            if message.channel == Message.Channel.EMAIL:
                # A subject built from someone's text (an emailed request's) is one line.
                subject = " ".join(message.subject.split())
                email = EmailMessage(
                    subject, message.body, settings.DEFAULT_FROM_EMAIL, [message.recipient],
                    headers={"Message-ID": f"<{message.message_id}@waiverdesk>"},
                    connection=mail,
                )  # fmt: skip
                if message.attachment_name:
                    email.attach(message.attachment_name, bytes(message.attachment))
                email.send()
            else:
                _post(message)
        except Gone as gone:
            _finish(message, Message.State.DEAD, now, str(gone))
            Webhook.objects.filter(pk=message.webhook_id).update(active=False)
            outcome["dead"] += 1
        except Exception as error:  # any failure to send is retried later
            _retry(message, now, error)
            outcome["retry" if message.state == Message.State.PENDING else "dead"] += 1
        else:
            _finish(message, Message.State.SENT, now)
            outcome["sent"] += 1
    return outcome


def due(now: datetime) -> list[Message]:
    """The messages a worker would send now (for --dry-run)."""
    return list(_due(now).order_by("next_attempt_at", "id"))


def _due(now: datetime):
    return Message.objects.filter(
        Q(state=Message.State.PENDING, next_attempt_at__lte=now)
        | Q(state=Message.State.SENDING, claimed_until__lt=now)  # a worker that died
    )


def _claim(now: datetime, limit: int) -> list[Message]:
    """Claim up to `limit` due messages for this worker: other workers skip them."""
    with transaction.atomic():
        ids = list(
            _due(now)
            .select_for_update(skip_locked=True)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        Message.objects.filter(id__in=ids).update(
            state=Message.State.SENDING, claimed_until=now + LEASE
        )
    return list(Message.objects.filter(id__in=ids).select_related("webhook").order_by("id"))


class Gone(Exception):
    """The receiver answered 410: it wants no more messages."""


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks signature header of one delivery attempt."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _post(message: Message) -> None:
    hook = message.webhook
    if not hook.active:
        raise Gone("the endpoint is disabled")
    timestamp = int(time.time())  # real time: receivers check it against theirs (replays)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message.message_id,  # the same on every retry
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(hook.secret, message.message_id, timestamp, message.body),
    }
    try:
        webhooks.post(hook.url, message.body.encode(), headers)
    except webhooks.DeliveryFailed as failed:
        if failed.status == 410:
            raise Gone("the endpoint answered 410 Gone") from None
        raise


def _finish(message: Message, state: str, now: datetime, error: str = "") -> None:
    message.state, message.attempts = state, message.attempts + 1
    Message.objects.filter(pk=message.pk).update(
        state=state,
        attempts=message.attempts,
        sent_at=now if state == Message.State.SENT else None,
        claimed_until=None,
        last_error=error[:500],
    )


def _retry(message: Message, now: datetime, error: Exception) -> None:
    attempts = message.attempts + 1
    if attempts > len(RETRY_DELAYS):
        _finish(message, Message.State.DEAD, now, repr(error))
        return
    message.state, message.attempts = Message.State.PENDING, attempts
    Message.objects.filter(pk=message.pk).update(
        state=Message.State.PENDING,
        attempts=attempts,
        next_attempt_at=now + RETRY_DELAYS[attempts - 1],
        claimed_until=None,
        last_error=repr(error)[:500],
    )
