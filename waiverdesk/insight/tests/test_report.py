"""The leadership report of the quarter of conftest.py: a PDF whose text, read back with a PDF
text extractor, holds the quarter's figures; a CSV pack; mailed once when the quarter ends."""

import io
import zipfile
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from pypdf import PdfReader

from waiverdesk.insight import report
from waiverdesk.insight.metrics import Period
from waiverdesk.notifications.models import Message
from waiverdesk.worker import jobs

Q1 = Period.parse("2027-Q1")
LATER = datetime(2027, 4, 1, 6, tzinfo=UTC)


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_pdf_holds_the_quarters_figures_against_the_previous_one(quarter):
    text = text_of(report.pdf(report.build(Q1, LATER)))
    assert "Exception process report 2027-Q1" in text
    for line in [
        "Requests submitted 5 0",  # this quarter, then 2026-Q4
        "Approval rate 67% -",
        "Cycle time p50 (hours) 20.0 -",
        "Cycle time p90 (hours) 28.0 -",
        "Decision to activation p50 (hours) 648.0 -",
        "Share renewed 50% -",
        "Reviews on time 50% -",
        "Expired on time 50% -",
        "Concessions granted (EUR) 3,000.00 0.00",
        "Leakage findings 1 0",
    ]:
        assert line in text, line
    assert "temporary_access 3,000" in text  # the chart of concessions by type
    assert f"{quarter['B']}: governance review overdue" in text  # an open risk


def test_the_csv_pack_holds_the_same_figures(quarter):
    pack = zipfile.ZipFile(io.BytesIO(report.csv_pack(report.build(Q1, LATER))))
    assert sorted(pack.namelist()) == [f"2027-Q1/{n}" for n in
                                       ("figures.csv", "metrics.csv", "patterns.csv", "risks.csv",
                                        "waits.csv")]  # fmt: skip
    figures = pack.read("2027-Q1/figures.csv").decode().splitlines()
    assert figures[0] == "metric,2027-Q1,2026-Q4" and "Approval rate,67%,-" in figures
    assert "concessions.total,3000.0" in pack.read("2027-Q1/metrics.csv").decode().splitlines()


def test_the_command_and_the_dashboard_button(quarter, world, tmp_path):
    pdf, pack = tmp_path / "q1.pdf", tmp_path / "q1.zip"
    call_command("report", "--period", "2027-Q1", "-o", str(pdf), "--csv", str(pack))
    assert "Requests submitted 5" in text_of(pdf.read_bytes())
    assert zipfile.is_zipfile(pack)
    with pytest.raises(CommandError, match="a quarter"):
        call_command("report", "--period", "Q1-2027")
    audrey = Client()
    audrey.force_login(world["audrey"])
    answer = audrey.get("/metrics/report.pdf?period=2027-Q1")
    assert answer["Content-Type"] == "application/pdf"
    assert "Requests submitted 5" in text_of(answer.content)


def test_the_report_is_mailed_to_its_subscribers_once_when_the_quarter_ends(quarter, world):
    for name in ("eva", "paula", "audrey", "rita"):
        world[name].email = f"{name}@example.com"
        world[name].save()
    assert not [line for line in jobs.tick(datetime(2027, 3, 31, tzinfo=UTC)) if "report" in line]
    assert "report 2027-Q1: mailed to 3 people" in jobs.tick(LATER)
    mails = Message.objects.filter(event="report.published")
    assert sorted(mails.values_list("recipient", flat=True)) == [
        "audrey@example.com", "eva@example.com", "paula@example.com",
    ]  # fmt: skip
    mail = mails.first()
    assert mail.attachment_name == "waiverdesk-report-2027-Q1.pdf"
    assert "Requests submitted 5" in text_of(bytes(mail.attachment))
    assert not [line for line in jobs.tick(LATER) if "report" in line]
    assert mails.count() == 3
