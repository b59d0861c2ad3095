"""The leadership report: the period's key figures against the previous period, charts, the
top patterns and the open risks, as a PDF and as a pack of CSV files; mailed to the policy's
subscribers when a period ends."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import cells
from waiverdesk.core.lifecycle import Status
from waiverdesk.governance import patterns
from waiverdesk.governance.models import Review
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies
from waiverdesk.waivers.models import Waiver
from waiverdesk.waivers.notice import _latin1

if TYPE_CHECKING:
    from fpdf import FPDF

from . import metrics
from .metrics import Period
from .models import ReportSent

# (label, how to read it from the figures, how to write it)
KEY_FIGURES = [
    ("Requests submitted", lambda f: f["submitted"], "{:,.0f}"),
    ("Approval rate", lambda f: f["approval_rate"], "{:.0%}"),
    ("Lapsed undecided", lambda f: f["lapsed"], "{:,.0f}"),
    ("Cycle time p50 (hours)", lambda f: f["cycle_hours"]["p50"], "{:,.1f}"),
    ("Cycle time p90 (hours)", lambda f: f["cycle_hours"]["p90"], "{:,.1f}"),
    ("Decision to activation p50 (hours)", lambda f: f["activation_hours"]["p50"], "{:,.1f}"),
    ("Share renewed", lambda f: f["renewed_share"], "{:.0%}"),
    ("Documentation complete", lambda f: f["adherence"]["documentation_complete"], "{:.0%}"),
    ("Reviews on time", lambda f: f["adherence"]["reviews_on_time"], "{:.0%}"),
    ("Expired on time", lambda f: f["adherence"]["expired_on_time"], "{:.0%}"),
    ("Approved without leakage", lambda f: f["adherence"]["no_leakage"], "{:.0%}"),
    ("Concessions granted ({currency})", lambda f: f["concessions"]["total"], "{:,.2f}"),
    ("Leakage findings", lambda f: f["leakage"]["findings"], "{:,.0f}"),
]


def build(period: Period, now: datetime | None = None) -> dict[str, Any]:
    """Everything the report shows."""
    now = now or clock.now()
    current = metrics.compute(period, now=now)
    previous = metrics.compute(period.previous(), now=now)
    return {
        "period": period,
        "previous": period.previous(),
        "figures": current,
        "key": [
            (
                label.format(currency=current["concessions"]["currency"]),
                _show(read(current), form),
                _show(read(previous), form),
            )
            for label, read, form in KEY_FIGURES
        ],  # fmt: skip
        "waits": metrics.bottlenecks(period, now=now),
        "patterns": patterns.findings(now)[:5],
        "risks": open_risks(now),
    }


def _show(value: Any, form: str) -> str:
    return "-" if value is None else form.format(value)


def open_risks(now: datetime) -> list[str]:
    """What leadership should know is open today: high and critical exceptions in force,
    overdue reviews, exceptions with leakage."""
    risky = Waiver.objects.filter(
        status__in=[Status.ACTIVE, Status.APPROVED], risk__overall__in=["high", "critical"]
    ).select_related("customer")
    overdue = Review.objects.filter(outcome="", due_at__lt=now).select_related("waiver")
    leaking = Waiver.objects.filter(
        status=Status.ACTIVE, flags__kind__in=metrics.LEAKAGE
    ).distinct()
    lines = [f"{w.reference} ({w.customer.name}, {w.type}): {w.risk['overall']} risk, in force "
             f"until {w.end}" for w in risky.order_by("end")[:10]]  # fmt: skip
    lines += [f"{r.waiver.reference}: governance review overdue since {r.due_at:%Y-%m-%d}"
              for r in overdue.order_by("due_at")[:10]]  # fmt: skip
    lines += [f"{w.reference}: use beyond what it allows (leakage)" for w in leaking[:10]]
    return lines


def pdf(report: dict[str, Any]) -> bytes:
    """The report (`build`) as a PDF: key figures against the previous period, charts,
    patterns, risks."""
    period = report["period"]
    figures = report["figures"]
    from fpdf import FPDF  # here: a third of a second to import, for the PDF alone

    doc = FPDF(format="A4")
    doc.set_title(f"Exception process report {period.label}")
    doc.add_page()
    doc.set_font("Helvetica", "B", 16)
    doc.cell(0, 10, f"Exception process report {period.label}", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", size=10)
    last_day = period.end - timedelta(days=1)
    doc.multi_cell(0, 5, f"Requests submitted from {period.start} to {last_day}, against "
                         f"{report['previous'].label}.")  # fmt: skip
    _heading(doc, "Key figures")
    widths = (95, 45, 45)
    _row(doc, ("", period.label, report["previous"].label), widths, bold=True)
    for row in report["key"]:
        _row(doc, row, widths)
    money = figures["concessions"]
    _chart(doc, f"Concessions granted by type ({money['currency']})", money["by_type"], "{:,.0f}")
    _chart(doc, f"Concessions granted by region ({money['currency']})", money["by_region"],
           "{:,.0f}")  # fmt: skip
    medians = {tier: q["p50"] or 0 for tier, q in figures["cycle_by_tier"].items()}
    _chart(doc, "Median hours to decide, by tier", medians, "{:,.1f}")
    waits = {role: q["p50"] or 0 for role, q in report["waits"]["by_role"].items()}
    _chart(doc, "Median hours a step waits, by approver role", waits, "{:,.1f}")
    _heading(doc, "Top patterns")
    _lines(doc, [f"{f.title}: {f.detail}" for f in report["patterns"]] or ["None found."])
    _heading(doc, "Open risks")
    _lines(doc, report["risks"] or ["None."])
    return bytes(doc.output())


def _heading(doc: FPDF, text: str) -> None:
    doc.ln(4)
    doc.set_font("Helvetica", "B", 12)
    doc.cell(0, 8, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", size=10)


def _row(doc: FPDF, cells, widths, bold: bool = False) -> None:
    doc.set_font("Helvetica", "B" if bold else "", 10)
    for text, width in zip(cells, widths, strict=True):
        doc.cell(width, 6, _latin1(str(text)), border="B")
    doc.ln()
    doc.set_font("Helvetica", size=10)


def _chart(doc: FPDF, title: str, values: dict[str, float], form: str) -> None:
    """A horizontal bar chart: label, bar scaled to the largest value, the value."""
    _heading(doc, title)
    if not values:
        _lines(doc, ["No data."])
        return
    top = max(values.values()) or 1
    for label, value in sorted(values.items(), key=lambda kv: -kv[1]):
        doc.cell(45, 6, _latin1(str(label))[:28])
        width = 100 * value / top
        if width > 0:
            doc.set_fill_color(37, 99, 235)
            doc.rect(doc.get_x(), doc.get_y() + 1, width, 4, style="F")
        doc.set_x(doc.get_x() + 102)
        doc.cell(0, 6, form.format(value), new_x="LMARGIN", new_y="NEXT")


def _lines(doc: FPDF, lines: list[str]) -> None:
    for line in lines:
        doc.multi_cell(0, 5, _latin1(f"- {line}"), new_x="LMARGIN", new_y="NEXT")


def csv_pack(report: dict[str, Any]) -> bytes:
    """The report's data (`build`) as a zip of CSV files."""
    period = report["period"]
    files = {
        "figures.csv": [("metric", period.label, report["previous"].label)]
        + [(label, now_, before) for label, now_, before in report["key"]],
        "metrics.csv": [("metric", "value"), *metrics.flatten(report["figures"])],
        "waits.csv": [("metric", "value"), *metrics.flatten(report["waits"])],
        "patterns.csv": [("kind", "title", "detail", "requests")]
        + [(f.kind, f.title, f.detail, " ".join(f.references)) for f in report["patterns"]],
        "risks.csv": [("open risk",), *[(line,) for line in report["risks"]]],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as pack:
        for name, rows in files.items():
            text = io.StringIO()
            csv.writer(text).writerows(cells.row(r) for r in rows)
            pack.writestr(f"{period.label}/{name}", text.getvalue())
    return out.getvalue()


def send_scheduled(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Mail the report of the period that ended to the policy's subscribers, once (when
    requests were submitted in it)."""
    schedule = policies.compiled(policies.active_version()).document.report
    if not schedule.subscribers:
        return []
    period = Period.containing(now.date(), schedule.every).previous()  # the one that ended
    if ReportSent.objects.filter(period=period.label).exists():
        return []
    if not metrics.cohort(period).exists():
        return []
    subscribers = User.objects.filter(
        Q(groups__name__in=schedule.subscribers) | Q(username__in=schedule.subscribers)
    ).distinct()
    people = notify.readers(subscribers, "report.published")
    if dry_run:
        return [(f"report {period.label}", f"would be mailed to {len(people)} people")]
    document = pdf(build(period, now))
    with transaction.atomic():
        _, created = ReportSent.objects.get_or_create(period=period.label, defaults={"at": now})
        if not created:
            return []  # another worker sent it
        for person in people:
            notify.queue_email(
                person.email, f"Exception process report {period.label}",
                f"The exception process report for {period.label} is attached.\n"
                f"The figures behind it: waiverdesk report --period {period.label} --csv "
                "pack.zip\n-- waiverdesk\n",
                "report.published", now,
                attachment=(f"waiverdesk-report-{period.label}.pdf", document),
            )  # fmt: skip
        audit.append("system", "report.published", None, {"to": [p.username for p in people]},
                     object_type="report", object_ref=period.label, at=now)  # fmt: skip
    return [(f"report {period.label}", f"mailed to {len(people)} people")]
