"""Billing against what exceptions authorize: each kind of discrepancy, and none on clean
data. rita's volume discount allows 20 % and 10 extra seats on AN-EDGE for GLOBEX-002 from
2027-02-01 to 2027-03-15."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from waiverdesk.billing import services as billing
from waiverdesk.testing import NOW, finish_required_tasks, request_body
from waiverdesk.usage import services as usage
from waiverdesk.waivers import services

HEADER = "invoice,line,customer,product,period_start,period_end,quantity,unit_price,discount_pct\n"


@pytest.fixture
def discount(world):
    body = request_body(
        type="volume_discount",
        scope={"seats": 10, "discount_pct": 20},
        evidence={"business_impact_analysis": "three-year commitment"},
        submit=True,
    )
    ref = services.create(body, world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    checks = ["contract_allows_discount", "revenue_recognition"]
    services.decide(ref, world["dana"], "approve", checks=checks, now=NOW)
    finish_required_tasks(ref, world["ivan"])
    services.sweep(now=NOW.replace(month=2, day=1))
    return services.get(ref)


def lines(*rows: str) -> None:
    report = billing.import_lines(io.BytesIO((HEADER + "\n".join(rows)).encode()), NOW)
    assert report.rejected == [] and report.accepted == len(rows)


def seats_used(quantity: float, day: str) -> None:
    record = {"record_id": f"u-{day}-{quantity}", "customer": "GLOBEX-002",
              "product": "AN-EDGE", "metric": "seats", "quantity": quantity,
              "period_start": day, "period_end": day}  # fmt: skip
    usage.ingest([(0, record)], NOW)


def kinds() -> list[tuple[str, str]]:
    return [(f"{d.line.invoice}/{d.line.line}", d.kind) for d in billing.discrepancies()]


def test_clean_billing_has_no_discrepancy(discount):
    seats_used(60, "2027-02-10")
    lines(
        "INV-1,1,GLOBEX-002,AN-EDGE,2027-02-01,2027-02-28,50,100,20",
        "INV-2,1,GLOBEX-002,AN-EDGE,2027-04-01,2027-04-30,50,100,0",
        "INV-2,2,GLOBEX-002,DB-ENT,2027-04-01,2027-04-30,5,900,50",  # no exception behind it
    )
    assert kinds() == []


def test_each_kind_of_discrepancy_is_found(discount):
    seats_used(75, "2027-03-05")
    lines(
        "INV-1,1,GLOBEX-002,AN-EDGE,2027-02-01,2027-02-28,60,100,25",
        "INV-2,1,GLOBEX-002,AN-EDGE,2027-03-01,2027-03-15,50,100,20",
        "INV-3,1,GLOBEX-002,AN-EDGE,2027-04-01,2027-04-30,60,100,20",
    )
    assert kinds() == [
        ("INV-1/1", "over_discounted"),
        ("INV-2/1", "under_billed"),
        ("INV-3/1", "billed_after_expiry"),
    ]
    (over,) = [d for d in billing.discrepancies() if d.kind == "over_discounted"]
    assert over.detail == "25 % billed, 20 % authorized"


def test_import_reports_bad_lines_and_skips_lines_already_imported(discount, tmp_path, capsys):
    path = tmp_path / "invoices.csv"
    path.write_text(HEADER + "INV-1,1,GLOBEX-002,AN-EDGE,2027-02-01,2027-02-28,60,100,25\n"
                    "INV-1,2,NOBODY,AN-EDGE,2027-02-01,2027-02-28,60,100,25\n")  # fmt: skip
    call_command("billing", "import", str(path))
    with pytest.raises(CommandError, match="0 lines kept, 1 already imported, 1 rejected"):
        call_command("billing", "import", str(path))  # nothing kept: a failure
    out = capsys.readouterr().out
    assert "line 3: customer: no such customer" in out
    assert "1 lines kept, 0 already imported, 1 rejected" in out
    call_command("billing", "discrepancies")
    assert "INV-1,1,GLOBEX-002,AN-EDGE,2027-02-01,2027-02-28,over_discounted" in (
        capsys.readouterr().out
    )


def test_finance_sees_the_page_and_the_csv_and_a_requester_does_not(discount, world):
    lines("INV-1,1,GLOBEX-002,AN-EDGE,2027-02-01,2027-02-28,60,100,25")
    fiona, rita = Client(), Client()
    fiona.force_login(world["fiona"])
    rita.force_login(world["rita"])
    assert "25 % billed, 20 % authorized" in fiona.get("/billing/").content.decode()
    assert fiona.get("/billing.csv").content.decode().startswith("invoice,line,customer")
    assert rita.get("/billing/").status_code == 403
