"""The customer notice (M2): what an approved exception allows, in plain language, exact
dates, scope limits, the conditions the customer is to be told of (the others, and the
approvals, stay internal) and what changes at the end; as text and as a PDF."""

from __future__ import annotations

import re
from datetime import datetime

from django.db import transaction
from fpdf import FPDF

from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import IN_FORCE
from waiverdesk.notifications import services as notify

from . import services
from .models import Task, Waiver

_FIELD = re.compile(r"\bscope\.(\w+)\b")


def text(waiver: Waiver) -> tuple[str, list[str]]:
    """The notice's title and its paragraphs."""
    kind = services.policy_of(waiver).document.types.get(waiver.type)
    label = kind.label if kind else waiver.type.replace("_", " ")
    grants = _fill(kind.grants, waiver) if kind and kind.grants else label.lower()
    products = ", ".join(sorted(f"{p.name} ({p.code})" for p in waiver.products.all()))
    limits = [
        f"{k.replace('_', ' ')}: {v}" for k, v in waiver.scope.items() if v not in ("", [], None)
    ]
    # Conditions are internal unless the approver said the customer is to be told.
    conditions = [f"{c.text} (by {c.due:%d %B %Y})"
                  for c in waiver.conditions.filter(customer_visible=True)]  # fmt: skip
    paragraphs = [
        f"Dear {waiver.customer.name},",
        f"We confirm an exception to your standard licensing terms: {label.lower()}. "
        f"It allows {grants}.",
        f"It covers {products}, under your {waiver.license_type} licence in {waiver.region}.",
        f"It applies from {waiver.start:%d %B %Y} to {waiver.end:%d %B %Y} inclusive, "
        "and not before or after those dates.",
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


def pdf(waiver: Waiver) -> bytes:
    """The notice as a one-page PDF a person can send."""
    title, paragraphs = text(waiver)
    document = FPDF(format="A4")
    document.set_title(title)
    document.add_page()
    document.set_font("Helvetica", "B", 15)
    document.multi_cell(0, 9, _latin1(title))
    document.ln(4)
    document.set_font("Helvetica", size=11)
    for paragraph in paragraphs:
        document.multi_cell(0, 6, _latin1(paragraph))
        document.ln(3)
    return bytes(document.output())


def send(reference: str, by, now: datetime) -> str:
    """Queue the notice to the customer's contact; it completes the notify-customer task."""
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
        title, paragraphs = text(waiver)
        notify.queue_email(to, title, "\n\n".join(paragraphs) + "\n", "waiver.notice", now,
                           object_ref=reference)  # fmt: skip
        audit.append(by.username, "waiver.notice_sent", waiver, {"to": to}, at=now)
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
