"""The customer notice (M2): what an approved exception allows, in plain language, exact
dates, scope limits, the conditions the customer is to be told of (the others, and the
approvals, stay internal) and what changes at the end; as text and as a PDF."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import IN_FORCE
from waiverdesk.directory.readers import Reader, site_default
from waiverdesk.notifications import services as notify

from . import services
from .models import SentNotice, Task, Waiver

_FIELD = re.compile(r"\bscope\.(\w+)\b")


@dataclass
class Letter:
    """A notice as it is sent: the letterhead, the reference and issue date, the cover note,
    the paragraphs, and who signs it."""

    organisation: str
    reference: str
    issued: str
    title: str
    cover_note: str
    paragraphs: list[str]
    signature: list[str]

    def as_text(self) -> str:
        head = [self.organisation] if self.organisation else []
        head += [f"Reference: {self.reference}", f"Date: {self.issued}", "", self.title, ""]
        body = [self.cover_note, ""] if self.cover_note else []
        return "\n".join([*head, *body, *"\n\n".join(self.paragraphs).split("\n"), "",
                          *self.signature]) + "\n"  # fmt: skip


def letter(waiver: Waiver, sender, reader: Reader, issued: date, cover_note: str = "") -> Letter:
    """The notice `sender` sends on `issued`, its dates written for `reader`."""
    title, paragraphs = text(waiver, reader)
    organisation = settings.ORG_NAME
    signature = [sender.get_full_name() or sender.username]
    if organisation:
        signature.append(organisation)
    return Letter(organisation, waiver.reference, reader.day(issued, 'long'), title,
                  cover_note.strip()[:COVER_NOTE_MAX], paragraphs, signature)  # fmt: skip


COVER_NOTE_MAX = 2000


def text(waiver: Waiver, reader: Reader | None = None) -> tuple[str, list[str]]:
    """The notice's title and its paragraphs (dates as `reader` writes them)."""
    reader = reader or site_default()
    kind = services.policy_of(waiver).document.types.get(waiver.type)
    label = kind.label if kind else waiver.type.replace("_", " ")
    grants = _fill(kind.grants, waiver) if kind and kind.grants else label.lower()
    products = ", ".join(sorted(f"{p.name} ({p.code})" for p in waiver.products.all()))
    limits = [
        f"{k.replace('_', ' ')}: {v}" for k, v in waiver.scope.items() if v not in ("", [], None)
    ]
    # Conditions are internal unless the approver said the customer is to be told.
    conditions = [f"{c.text} (by {reader.day(c.due, 'long')})"
                  for c in waiver.conditions.filter(customer_visible=True)]  # fmt: skip
    start, end = reader.day(waiver.start, "long"), reader.day(waiver.end, "long")
    paragraphs = [
        f"Dear {waiver.customer.name},",
        f"We confirm an exception to your standard licensing terms: {label.lower()}. "
        f"It allows {grants}.",
        f"It covers {products}, under your {waiver.license_type} licence in {waiver.region}.",
        f"It applies from {start} to {end} inclusive, and not before or after those dates.",
    ]
    if limits:
        paragraphs.append("Its limits: " + "; ".join(limits) + ".")
    if conditions:
        paragraphs.append("It is granted on these conditions: " + "; ".join(conditions) + ".")
    if kind and kind.at_end:
        paragraphs.append(f"When it ends, {_fill(kind.at_end, waiver)}.")
    paragraphs.append(
        f"Please quote {waiver.reference} in any question about it. Nothing else in your "
        "agreement changes."
    )
    return f"Exception {waiver.reference}: {label}", paragraphs


def pdf(notice: Letter) -> bytes:
    """The notice as a PDF a person can send, on the letterhead (WAIVERDESK_ORG_NAME and
    the logo file WAIVERDESK_ORG_LOGO, when set)."""
    from fpdf import FPDF  # here: a third of a second to import, for the PDF alone

    document = FPDF(format="A4")
    document.set_title(notice.title)
    document.add_page()
    logo = Path(settings.ORG_LOGO) if settings.ORG_LOGO else None
    if logo and logo.is_file():
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # not an image: left out
            document.image(str(logo), h=14)
    document.set_font("Helvetica", "B", 12)
    if notice.organisation:
        document.multi_cell(0, 7, _latin1(notice.organisation))
    document.set_font("Helvetica", size=10)
    document.multi_cell(0, 6, _latin1(f"Reference: {notice.reference}    Date: {notice.issued}"))
    document.ln(4)
    document.set_font("Helvetica", "B", 15)
    document.multi_cell(0, 9, _latin1(notice.title))
    document.ln(4)
    document.set_font("Helvetica", size=11)
    for paragraph in ([notice.cover_note] if notice.cover_note else []) + notice.paragraphs:
        document.multi_cell(0, 6, _latin1(paragraph))
        document.ln(3)
    for line in notice.signature:
        document.multi_cell(0, 6, _latin1(line))
    return bytes(document.output())


def copies_to(raw: str) -> list[str]:
    """The addresses of a "copy to" field (commas, semicolons or spaces between them);
    Invalid at `cc` naming each that is not an address."""
    found = [a.strip() for a in re.split(r"[,;\s]+", raw or "") if a.strip()]
    bad = []
    for address in found:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address[:80])
    if bad:
        verb = "is not an email address" if len(bad) == 1 else "are not email addresses"
        raise Invalid([Problem("cc", "invalid", f"Copy to: {', '.join(bad)} {verb}")])
    if len(found) > 10:
        raise Invalid([Problem("cc", "too_many", "Copy to: at most 10 addresses")])
    return list(dict.fromkeys(found))


def send(reference: str, by, now: datetime, cover_note: str = "", cc: str = "",
         reader: Reader | None = None) -> str:  # fmt: skip
    """Queue the notice, as a text and a PDF, to the customer's contact and every copy
    address; keep the copy sent; it completes the notify-customer task."""
    copies = copies_to(cc)
    reader = reader or site_default()
    with transaction.atomic():
        waiver = services.lock(reference)
        if waiver.status not in IN_FORCE:
            raise Denied("invalid_state", "a notice goes out for an approved exception only")
        task = waiver.tasks.filter(name="notify_customer").first()
        if by.pk != waiver.requester_id and not (task and services.may_do(task, by)):
            raise Denied("not_requester", "the requester sends the customer notice")
        to = waiver.customer.contact_email
        if not to:
            raise Invalid(
                [Problem("contact_email", "required", "the customer has no contact address")]
            )
        notice = letter(waiver, by, reader, now.astimezone(reader.zone).date(), cover_note)
        body, document = notice.as_text(), pdf(notice)
        for address in [to, *copies]:
            notify.queue_email(address, notice.title, body, "waiver.notice", now,
                               object_ref=reference,
                               attachment=(f"{reference}-notice.pdf", document))  # fmt: skip
        SentNotice.objects.create(waiver=waiver, to=to, cc=", ".join(copies),
                                  subject=notice.title, body=body, pdf=document, sent_by=by,
                                  sent_at=now)  # fmt: skip
        audit.append(by.username, "waiver.notice_sent", waiver,
                     {"to": to, "cc": copies, "cover_note": bool(notice.cover_note)},
                     at=now)  # fmt: skip
        if task and task.status == Task.State.OPEN:
            services.complete_task(task.pk, by, f"notice sent to {to}", now=now)
    return to


def _fill(sentence: str, waiver: Waiver) -> str:
    """A policy sentence with `scope.x` replaced by the waiver's value."""
    return _FIELD.sub(lambda m: str(waiver.scope.get(m[1], m[0])), sentence)


def _latin1(text: str) -> str:
    """The PDF's built-in font speaks Latin-1: typographic characters become plain ones."""
    plain = text.translate({0x2026: "...", 0x2013: "-", 0x2014: "-", 0x2018: "'", 0x2019: "'",
                            0x201C: '"', 0x201D: '"'})  # fmt: skip
    return plain.encode("latin-1", "replace").decode("latin-1")
