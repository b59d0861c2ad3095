"""Telling people and systems what happened: messages written to the outbox in the
transaction of the change, then delivered by the worker (email over SMTP, webhooks signed
per Standard Webhooks), retried with backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.directory.readers import readers_for, writing_for
from waiverdesk.webhooks import services as webhooks
from waiverdesk.webhooks.models import Webhook

from .events import EVENTS, require_known
from .models import Message, Preference

log = logging.getLogger(__name__)

RETRY_DELAYS = [timedelta(seconds=s) for s in (10, 60, 300, 1800, 7200, 21600)]
# Longer than any one delivery can take (webhooks.post's deadline, SMTP's timeout).
LEASE = timedelta(minutes=5)


PERSONAL = "\x1e"  # where an email's personal part goes (a character no text holds)


def publish(
    event: str,
    waiver: Any,
    data: dict[str, Any],
    to: list[User | None],
    now: datetime,
    personal: Callable[[User], str] | None = None,
) -> None:
    """Queue `event` about `waiver` for every subscribed webhook and, by email, for the people
    in `to` who are active and have an address. Call it inside the transaction of the change.
    `personal` gives what one person's email says that nobody else's does (their decision
    links). An email is written at delivery (see `written`), for its reader, from what the
    request was when the event happened; one whose reader has muted the event is not sent."""
    publish_many(event, [(waiver, data, to)], now, personal)


def publish_many(
    event: str,
    items: list[tuple[Any, dict[str, Any], list]],
    now: datetime,
    personal: Callable[[User], str] | None = None,
) -> None:
    """`publish` for many waivers at once: (waiver, data, people) each."""
    hooks = [h for h in Webhook.objects.filter(active=True) if not h.events or event in h.events]
    messages = []
    for waiver, data, to in items:
        facts = {
            "reference": waiver.reference,
            "status": waiver.status,
            "type": waiver.type,
            "customer": waiver.customer.external_id,
            "start": waiver.start.isoformat(),
            "end": waiver.end.isoformat(),
        }
        body = json.dumps({"type": event, "timestamp": now.isoformat(), "data": {**facts, **data}},
                          sort_keys=True)  # fmt: skip
        messages += [_message(Message.Channel.WEBHOOK, event, waiver, now, webhook=h, body=body)
                     for h in hooks]  # fmt: skip
        told = {u.pk: u for u in to if u and u.is_active and u.email}
        if not told:
            continue
        context = {
            **facts,
            "customer_name": waiver.customer.name,
            "money": waiver.money,
            "financials": waiver.financials,
            "data": data,
        }
        messages += [
            _message(Message.Channel.EMAIL, event, waiver, now, recipient=user.email, user=user,
                     subject=f"{waiver.reference} {EVENTS[event]}",
                     context={**context, "personal": personal(user) if personal else ""})
            for user in told.values()
        ]  # fmt: skip
    Message.objects.bulk_create(messages)


def written(messages: list[Message]) -> list[Message]:
    """Write the bodies of the event emails among `messages` (and store them), each for its
    reader: their language and time zone, as their settings say now. Those whose reader has
    muted the event since are removed, unsent. Return the messages still to send."""
    unwritten = [m for m in messages if m.user_id and not m.body]
    if not unwritten:
        return messages
    people = [m.user for m in unwritten]
    muted = {(p.user_id, e) for p in Preference.objects.filter(user__in=people) for e in p.muted}
    people_read = readers_for(people)
    dropped, texts = [], {}
    for m in unwritten:
        if (m.user_id, m.event) in muted:
            dropped.append(m.pk)
            continue
        reader = people_read[m.user_id]
        event = {k: v for k, v in m.context.items() if k != "personal"}
        key = (reader, m.object_ref, m.event, m.created_at, json.dumps(event, sort_keys=True))
        if key not in texts:  # one text per way of reading; what is personal goes in after
            with writing_for(reader):
                texts[key] = render_to_string("notifications/email.txt", _email_context(m))
        m.body = texts[key].replace(PERSONAL, m.context["personal"])
    Message.objects.bulk_update([m for m in unwritten if m.pk not in dropped], ["body"])
    Message.objects.filter(pk__in=dropped).delete()
    return [m for m in messages if m.pk not in dropped]


def _email_context(message: Message) -> dict[str, Any]:
    """What the email template reads of an event, from the message's snapshot."""
    facts = message.context
    waiver = {
        **facts,
        "customer": {"name": facts["customer_name"], "external_id": facts["customer"]},
        "start": date.fromisoformat(facts["start"]),
        "end": date.fromisoformat(facts["end"]),
    }
    return {
        "waiver": waiver,
        "sentence": EVENTS[message.event],
        "data": facts["data"],
        "url": f"{settings.BASE_URL}/requests/{message.object_ref}/",
        "sent": message.created_at,
        "personal": PERSONAL,
    }


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
    headers: dict[str, str] | None = None,
) -> None:
    """Queue one email outside the event list (an answer to an emailed request, a report),
    with a file (name, content) and extra headers (an answer's In-Reply-To…) if given."""
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
        headers=headers or {},
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
    """Send the messages that are due; count what happened.

    Each endpoint (every webhook, and the SMTP server) is a lane: its messages go one at a
    time in the order they were queued, and up to DELIVERY_CONCURRENCY lanes send at once,
    so a slow or failing endpoint costs the others nothing. A lane whose delivery fails
    waits for the next round. A lane claims a few messages at a time, no more than it can
    send within half their lease, and a message is marked only if this worker still holds
    it: several workers never send one message twice unless one of them dies mid-send
    (then the message is sent again, with the same webhook-id, once its lease ends)."""
    now = now or clock.now()
    started, token = time.monotonic(), uuid.uuid4().hex

    def moment() -> datetime:  # `now`, moved on by the time this round has taken
        return now + timedelta(seconds=time.monotonic() - started)

    lanes: dict[object, _Lane] = {}
    queued = _due(now).order_by("next_attempt_at", "id")
    for pk, channel, hook in queued.values_list("id", "channel", "webhook")[:limit]:
        lanes.setdefault(hook or channel, _Lane(token)).due.append(pk)
    outcome: Counter = Counter()
    if not lanes:
        return outcome
    mail = get_connection()  # used by the email lane only, one message at a time
    waiting, running = deque(lanes.values()), {}
    with ThreadPoolExecutor(max_workers=settings.DELIVERY_CONCURRENCY) as pool:

        def start_lanes() -> None:
            while waiting and len(running) < settings.DELIVERY_CONCURRENCY:
                lane = waiting.popleft()
                if chunk := lane.claim(moment()):
                    running[pool.submit(_send_in_order, chunk, mail)] = (lane, chunk)

        start_lanes()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                lane, chunk = running.pop(future)
                tried = future.result()
                if tried and tried[-1][1] is not None:  # the rest waits for the next round
                    lane.release(chunk[len(tried) :])
                else:
                    waiting.append(lane)
                for message, error in tried:
                    if error is not None:
                        log.warning("message %s to %s not sent: %s", message.pk,
                                    message.recipient or message.webhook_id,
                                    _said(error, message.channel))  # fmt: skip
                    outcome[_record(message, error, token, now)] += 1
            start_lanes()
    return outcome


class _Lane:
    """One endpoint's due messages in a round, claimed a few at a time."""

    def __init__(self, token: str):
        self.token = token
        self.due: deque[int] = deque()

    def claim(self, now: datetime) -> list[Message]:
        """The next messages to send, claimed until now + LEASE: as many as can surely be
        sent in half that time (one, when the lease is short)."""
        timeout = max(settings.WEBHOOK_TIMEOUT, settings.EMAIL_TIMEOUT or 0)
        size = max(1, min(20, int(LEASE.total_seconds() / 2 // timeout)))
        while self.due:
            ids = [self.due.popleft() for _ in range(min(size, len(self.due)))]
            # A conditional update: of several workers, each message goes to exactly one.
            _due(now).filter(pk__in=ids).update(
                state=Message.State.SENDING, claim=self.token, claimed_until=now + LEASE
            )
            mine = Message.objects.filter(pk__in=ids, state=Message.State.SENDING, claim=self.token)
            chunk = list(mine.select_related("webhook", "user").order_by("next_attempt_at", "id"))
            if chunk := written(chunk):
                return chunk
        return []

    def release(self, messages: list[Message]) -> None:
        """Give back what was claimed and not sent, and stop for this round."""
        Message.objects.filter(
            pk__in=[m.pk for m in messages], state=Message.State.SENDING, claim=self.token
        ).update(state=Message.State.PENDING, claim="", claimed_until=None)
        self.due.clear()


def _send_in_order(chunk: list[Message], mail) -> list[tuple[Message, BaseException | None]]:
    """Send a lane's messages one after another (in a delivery thread: no database here),
    stopping at the first that fails; each tried one with its error, if any."""
    tried = []
    for message in chunk:
        try:
            _send(message, mail)
        except Exception as error:  # any failure to send is recorded and retried later
            tried.append((message, error))
            break
        tried.append((message, None))
    return tried


def _send(message: Message, mail) -> None:
    """Send one message (in a delivery thread: no database here)."""
    if message.channel == Message.Channel.WEBHOOK:
        _post(message)
        return
    # A subject built from someone's text (an emailed request's) is one line.
    subject = " ".join(message.subject.split())
    email = EmailMessage(
        subject, message.body, settings.DEFAULT_FROM_EMAIL, [message.recipient],
        headers={"Message-ID": f"<{message.message_id}@waiverdesk>", **message.headers},
        connection=mail,
    )  # fmt: skip
    if message.attachment_name:
        email.attach(message.attachment_name, bytes(message.attachment))
    email.send()


def _record(message: Message, error: BaseException | None, token: str, now: datetime) -> str:
    """Mark what became of a message this worker sent, if it still holds it; say what."""
    held = Message.objects.filter(pk=message.pk, state=Message.State.SENDING, claim=token)
    attempts = message.attempts + 1
    if error is None:
        if not held.update(state=Message.State.SENT, attempts=attempts, sent_at=now,
                           claimed_until=None, claim=""):  # fmt: skip
            return "lost"  # the lease ran out and another worker has it now
        if message.webhook is not None and message.webhook.failing_since is not None:
            _judge_endpoint(message.webhook, None, now)  # the failing streak ends
        return "sent"
    if isinstance(error, Gone) or attempts > len(RETRY_DELAYS):
        state, fields, result = Message.State.DEAD, {}, "dead"
    else:
        state, result = Message.State.PENDING, "retry"
        fields = {"next_attempt_at": now + RETRY_DELAYS[message.attempts]}
    with transaction.atomic():
        if not held.update(state=state, attempts=attempts, claimed_until=None, claim="",
                           last_error=_said(error, message.channel), **fields):  # fmt: skip
            return "lost"
        if message.channel == Message.Channel.WEBHOOK:
            _judge_endpoint(message.webhook, error, now)
    return result


def _said(error: BaseException, channel: str) -> str:
    """Why a message was not sent, for its outbox row and the log."""
    if isinstance(error, Gone | webhooks.DeliveryFailed):
        return str(error)[:500]
    return (mail_failure(error) if channel == Message.Channel.EMAIL else repr(error))[:500]


def mail_failure(error: BaseException) -> str:
    """Why the SMTP server did not take a message, in words an operator can act on."""
    server = f"the mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"

    def said(e) -> str:
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else ""
        return f" ({e.smtp_code} {text})".rstrip() if text else f" ({e.smtp_code})"

    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"{server} refused the user name or password of EMAIL_URL{said(error)}"
    if isinstance(error, smtplib.SMTPNotSupportedError) or "STARTTLS extension" in str(error):
        return f"{server} does not offer STARTTLS: use smtp:// without ?starttls=1, or smtps://"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"{server} refused the recipient: " + "; ".join(
            f"{address} {code} {reply.decode(errors='replace')}"
            for address, (code, reply) in error.recipients.items()
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        return f"{server} refused the sender {error.sender}{said(error)}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{server} answered{said(error)}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"{server}'s TLS certificate is not trusted: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {server} failed ({error.reason}): is it smtps:// (port 465) or STARTTLS?"
    if isinstance(error, ConnectionRefusedError):
        return f"{server} refused the connection: is it running, and is the port right?"
    if isinstance(error, TimeoutError):
        return f"{server} did not answer within {settings.EMAIL_TIMEOUT} seconds"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"{server} closed the connection ({error})"
    if isinstance(error, OSError):
        return f"{server} could not be reached: {error.strerror or error}"
    return repr(error)


def _judge_endpoint(hook: Webhook, error: BaseException | None, now: datetime) -> None:
    """Keep the endpoint's failing streak: cleared by a success; after WEBHOOK_DISABLE_AFTER
    of nothing but failures (or at once, when it answers 410) it is disabled and the person
    who registered it is told."""
    hooks = Webhook.objects.filter(pk=hook.pk, active=True)
    if error is None:
        hooks.exclude(failing_since=None).update(failing_since=None)
        return
    hooks.filter(failing_since=None).update(failing_since=now)
    failing = Webhook.objects.filter(pk=hook.pk).values_list("failing_since", flat=True).first()
    gone = isinstance(error, Gone)
    if not gone and (failing is None or now - failing < settings.WEBHOOK_DISABLE_AFTER):
        return
    why = str(error) if gone else f"every delivery failed since {failing:%Y-%m-%d %H:%M} UTC"
    if not hooks.update(active=False, disabled_reason=why[:200]):
        return  # disabled already
    Message.objects.filter(webhook=hook, state=Message.State.PENDING).update(
        state=Message.State.DEAD, last_error=f"not sent: the endpoint was disabled ({why})"[:500]
    )
    audit.append("system", "webhook.disabled", hook, {"url": hook.url, "reason": why}, at=now)
    owner = hook.created_by
    if owner.is_active and owner.email:
        said = _said(error, Message.Channel.WEBHOOK)
        queue_email(
            owner.email, f"Webhook disabled: {hook.url}",
            render_to_string("notifications/webhook_disabled.txt",
                             {"hook": hook, "why": why, "last_error": said}),
            "webhook.disabled", now, object_ref=f"webhook-{hook.pk}",
        )  # fmt: skip


def due(now: datetime) -> list[Message]:
    """The messages a worker would send now (for --dry-run)."""
    return list(_due(now).order_by("next_attempt_at", "id"))


def _due(now: datetime):
    return Message.objects.filter(
        Q(state=Message.State.PENDING, next_attempt_at__lte=now)
        | Q(state=Message.State.SENDING, claimed_until__lt=now)  # a worker that died
    )


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
