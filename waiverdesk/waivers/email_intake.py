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

The field names are those of the request body (SPEC §7) and of the web form, in any case
and spacing; what a mail client adds around them (HTML, flowed lines, quoted replies,
signatures, charsets, attachments) is read by email_reading.

No message can stop intake or be forged into a draft: each is handled on its own, and one
that is not made a draft (unverified, automatic, already handled, unreadable, or with
problems) is quarantined with its reason. Only a verified sender is ever answered, and
never an automatic message (RFC 3834), so no forged address gets mail and no loop starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, IntegrityError, transaction

from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.notifications import services as notify

from . import email_checks, request_form, services
from . import email_reading as reading
from .models import InboundEmail

log = logging.getLogger(__name__)


@dataclass
class Answer:
    """What became of one message: the answer to its sender (when one is sent), the draft's
    reference, or why the message was quarantined."""

    to: str
    subject: str
    body: str
    reference: str | None = None
    quarantined: str = ""  # why the message was not made a draft
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return bool(self.to)


def receive(raw: bytes, now: datetime) -> Answer:
    """Read one email and make a draft of it, or say why not; the answer (when the sender
    may be answered) and the record of the message are stored with the draft. Never raises:
    whatever a message holds, the next one is read."""
    try:
        return _receive(raw, now)
    except Exception as error:  # a message nobody foresaw must not stop the queue
        log.exception("an emailed request could not be handled")
        answer = unanswered(f"it could not be read ({type(error).__name__})")
        try:
            _record(_key(None, raw), None, answer, now)
        except Exception:  # noqa: BLE001 — the log has it, and the quarantine the message
            log.exception("and it could not be recorded")
        return answer


def unanswered(why: str) -> Answer:
    """A message quarantined without an answer (it may be forged, or is automatic)."""
    return Answer("", "", f"Quarantined: {why}.", quarantined=why)


def too_large(head: bytes, size: int, now: datetime) -> Answer:
    """Refuse unread a message of `size` bytes that begins with `head`; it is recorded (by
    its headers) and not answered."""
    limit = settings.EMAIL_MAX_BYTES / 2**20
    answer = unanswered(f"it is {size / 2**20:.1f} MB, more than the {limit:.0f} MB allowed")
    message = BytesHeaderParser(policy=policy.default).parsebytes(head)
    with contextlib.suppress(IntegrityError):  # handled (refused) already
        _record(_key(message, head), message, answer, now)
    return answer


def _receive(raw: bytes, now: datetime) -> Answer:
    if len(raw) > settings.EMAIL_MAX_BYTES:
        return too_large(raw[:65536], len(raw), now)
    message = BytesParser(policy=policy.default).parsebytes(raw)
    key = _key(message, raw)
    if InboundEmail.objects.filter(message_id=key).exists():
        return unanswered("it was handled already")
    reply = _reply_to(message)

    def refuse(why: str, answer: bool = True) -> Answer:
        result = Answer(**reply, body=why, quarantined=why.strip()) if answer else unanswered(why)
        _record(key, message, result, now)
        return result

    if why := email_checks.automatic(message):
        return refuse(why, answer=False)
    if not email_checks.verified(message, raw):
        why = (f"the sender {reply['to'] or '(none)'} could not be verified: no DKIM signature "
               "of its domain, no trusted Authentication-Results")  # fmt: skip
        return refuse(why, answer=False)
    user = User.objects.filter(email__iexact=reply["to"], is_active=True).first()
    if user is None:
        return refuse("We do not know this address, so nothing was created.\n")
    try:
        text = reading.text_of(message)
    except reading.UnknownCharset as unknown:
        return refuse(f"Nothing was created: your message is in a character set we cannot read "
                      f"({unknown.charset}). Please send it as UTF-8.\n")  # fmt: skip
    profile = getattr(user, "profile", None)
    fields = reading.fields(text, profile.locale if profile else None)
    files = reading.attachments(message, fields, _evidence_kinds())
    for file in files:  # "see attached": the file is the evidence, not those words
        if file.kind and reading.ATTACHED.search(fields.get(f"evidence_text.{file.kind}", "")):
            del fields[f"evidence_text.{file.kind}"]
    body = request_form.body_from(fields.get("type", ""), fields)
    uploads = [services.Upload(f.kind, f.filename, f.content, f.content_type)
               for f in files if f.kind]  # fmt: skip
    unnamed = [f.filename for f in files if not f.kind]
    try:
        # The draft, its answer and the record of the message commit together; a refusal
        # (recorded by the service) and its answer do too; their audit entries are chained
        # at the end, as a service's are.
        with audit.atomic():
            try:
                waiver = services.create(body, user, now=now, uploads=uploads)
            except Invalid as invalid:
                # In words, with the name to write the field under in a message.
                lines = "".join(
                    f"  {request_form.label_of(p.field)} ({request_form.field_of(p.field)}): "
                    f"{p.message}\n"
                    for p in invalid.problems
                )
                return refuse("Nothing was created. Please fix:\n" + lines)
            except Denied as denied:
                return refuse(f"Nothing was created: {denied.message}.\n")
            kept = "".join(f"  {u.kind.replace('_', ' ')}: {u.filename}\n" for u in uploads)
            left = "".join(f"  {name}\n" for name in unnamed)
            answer = Answer(
                **reply,
                body=f"Your request is saved as draft {waiver.reference}.\n"
                + (f"Kept as its evidence:\n{kept}" if kept else "")
                + (
                    f"Not kept, as no field or file name says what evidence it is (write, "
                    f"for example, 'evidence.usage_forecast: see attached'):\n{left}"
                    if left
                    else ""
                )
                + f"Review and submit it at {settings.BASE_URL}/requests/{waiver.reference}/\n",
                reference=waiver.reference,
            )
            _record(key, message, answer, now)
            return answer
    except IntegrityError:
        if InboundEmail.objects.filter(message_id=key).exists():  # another intake was first
            return unanswered("it was handled already")
        raise
    except DatabaseError as error:  # a value the database refuses
        log.warning("an emailed request could not be stored: %s", error)
        return refuse("Nothing was created: a value in your message could not be stored; "
                      "please check it for unusual characters.\n")  # fmt: skip


def _record(key: str, message: EmailMessage | None, answer: Answer, now: datetime) -> None:
    """Keep what became of the message and queue its answer, in one transaction."""
    outcome = InboundEmail.Outcome.QUARANTINED if answer.quarantined else InboundEmail.Outcome.DRAFT
    with transaction.atomic():
        InboundEmail.objects.create(
            message_id=key,
            sender=email_checks.sender(message)[:254] if message else "",
            subject=_one_line(message.get("Subject", ""))[:200] if message else "",
            outcome=outcome,
            reason=answer.quarantined,
            answered=answer.answered,
            reference=answer.reference or "",
            received_at=now,
        )
        if answer.answered:
            notify.queue_email(
                answer.to, answer.subject, answer.body, "intake.answer", now,
                object_ref=answer.reference or "", headers=answer.headers,
            )  # fmt: skip


def _key(message: EmailMessage | None, raw: bytes) -> str:
    """The message's Message-ID, or (without one) the hash of the whole message."""
    try:
        found = str(message.get("Message-ID", "")).strip() if message is not None else ""
    except Exception:  # noqa: BLE001 — a header that does not parse: use the hash
        found = ""
    return found[:300] if found else "sha256:" + hashlib.sha256(raw).hexdigest()


def _reply_to(message: EmailMessage) -> dict:
    """The answer's address, subject and threading headers (RFC 3834 §3, RFC 5322 §3.6.4)."""
    subject = _one_line(message.get("Subject", "")) or "(no subject)"
    if not re.match(r"(?i)re\s*:", subject):
        subject = f"Re: {subject}"
    headers = {"Auto-Submitted": "auto-replied"}
    if original := _one_line(message.get("Message-ID", "")):
        headers["In-Reply-To"] = original
        headers["References"] = " ".join(
            [*_one_line(message.get("References", "")).split()[-10:], original]
        )
    return {"to": email_checks.sender(message), "subject": subject, "headers": headers}


def _one_line(value) -> str:
    return " ".join(str(value or "").split())


def _evidence_kinds() -> set[str]:
    """The evidence the active policy asks for, of any type: what a file's name may say."""
    from waiverdesk.policies.services import active_version, compiled

    return {k for t in compiled(active_version()).types.values() for k in t.required_evidence}
