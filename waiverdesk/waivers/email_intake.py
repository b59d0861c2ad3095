"""Requests by email (I1): a message from a known sender, its body lines `field: value`,
becomes a draft; the sender is answered with the reference number or with the problems.

    From: rita@example.com
    Subject: temporary access for Globex

    type: temporary_access
    customer: GLOBEX-002
    products: AN-EDGE, AN-BI
    license_type: subscription
    region: AMER
    start: 2027-02-01
    end: 2027-03-15
    scope.seats: 50
    financials.currency: EUR
    financials.list_value: 12000
    financials.concession: 3000
    justification.benefit: Keeps 50 analysts working during the renewal
    justification.customer_impact: No outage
    justification.why_not_standard: The renewal paperwork is late
    outcomes.metric: analysts working through the renewal
    outcomes.target: 50
    control_owner: olga

The field names are those of the request body (SPEC §7) and of the web form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.utils import parseaddr

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import QueryDict

from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.notifications import services as notify

from . import request_form, services


@dataclass
class Answer:
    to: str
    subject: str
    body: str
    reference: str | None = None


def receive(raw: bytes, now: datetime) -> Answer:
    """Read one email and make a draft of it, or say why not; the answer is queued too."""
    message = message_from_bytes(raw, policy=policy.default)
    sender = parseaddr(message.get("From", ""))[1].lower()
    subject = f"Re: {message.get('Subject', '(no subject)')}"
    user = User.objects.filter(email__iexact=sender, is_active=True).first() if sender else None
    if user is None:
        answer = Answer(sender, subject, "We do not know this address, so nothing was created.")
    else:
        part = message.get_body(preferencelist=("plain",))
        fields = _fields(part.get_content() if part else "")
        body = request_form.body_from(fields.get("type", ""), fields)
        # The draft and its answer commit together; a refusal (recorded by the service) and
        # its answer do too.
        with transaction.atomic():
            try:
                waiver = services.create(body, user, now=now)
            except Invalid as invalid:
                lines = [f"  {p.field}: {p.message}" for p in invalid.problems]
                answer = Answer(
                    sender, subject, "Nothing was created. Please fix:\n" + "\n".join(lines) + "\n"
                )
            except Denied as denied:
                answer = Answer(sender, subject, f"Nothing was created: {denied.message}.\n")
            else:
                answer = _created(sender, subject, waiver.reference)
            _queue(answer, now)
        return answer
    if answer.to:
        with transaction.atomic():
            _queue(answer, now)
    return answer


def _created(to: str, subject: str, reference: str) -> Answer:
    return Answer(
        to,
        subject,
        f"Your request is saved as draft {reference}.\n"
        f"Review and submit it at {settings.BASE_URL}/requests/{reference}/\n",
        reference,
    )


def _fields(text: str) -> QueryDict:
    """The `field: value` lines of a message body (other lines are ignored)."""
    fields = QueryDict(mutable=True)
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or " " in name:
            continue
        if name == "products":
            fields.setlist(name, [p.strip() for p in value.split(",") if p.strip()])
        else:
            fields[name] = value
    return fields


def _queue(answer: Answer, now: datetime) -> None:
    notify.queue_email(answer.to, answer.subject, answer.body, "intake.answer", now,
                       object_ref=answer.reference or "")  # fmt: skip
