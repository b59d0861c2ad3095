"""Money in every currency (A2, A3, A11, G4): exchange rates are reference data, a request's
figures are converted at the rate in force the day it is submitted and recorded with it, and
every threshold, metric and report works in the base currency."""

import io
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Invalid
from waiverdesk.directory import rates
from waiverdesk.directory.models import ExchangeRate
from waiverdesk.insight import metrics, report
from waiverdesk.insight.metrics import Period
from waiverdesk.insight.replay import replay
from waiverdesk.testing import NOW, finish_required_tasks, request_body
from waiverdesk.waivers import services

# The ECB's daily file, as published: a header of codes, one line of rates, trailing commas.
ECB_DAILY = """Date, USD, JPY, BGN, CZK, GBP,
04 January 2027, 1.0400, 160.00, 1.9558, 25.021, 0.8300,
"""
ECB_HISTORY = """Date,USD,JPY,BGN,CYP,GBP,
2027-01-04,1.0400,160.00,1.9558,N/A,0.8300,
2026-12-31,1.0500,158.00,1.9558,N/A,0.8400,
"""
TREASURY = "date,currency,rate,base\n2027-01-04,CHF,0.9300,EUR\n2027-01-04,EUR,0.9615384615,USD\n"


def cli(*args, stdin: str = "") -> str:
    import sys

    out, old = io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command(*args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def body(currency: str, concession: float, **changes):
    """A temporary access request whose only money is its concession in `currency`."""
    financials = {"currency": currency, "list_value": concession * 4, "concession": concession}
    return request_body(financials=financials, **changes)


def approve_fully(ref: str, people) -> None:
    """Each pending step approved by the first person who may decide it."""
    while (waiver := services.get(ref)).status in ("submitted", "in_review"):
        who = next(p for p in people.values() if services.may_act(waiver, p) is None)
        services.decide(ref, who, "approve", now=NOW)


@pytest.fixture
def priced(world):
    cli("rates", "import", "-", stdin=ECB_DAILY)
    return world


def test_the_ecb_files_and_a_treasury_export_are_read_as_published(world, tmp_path):
    daily = rates.read(ECB_DAILY, "EUR")
    assert {(r.currency, r.rate) for r in daily} >= {("USD", Decimal("1.04")), ("JPY", 160)}
    assert {r.day for r in daily} == {date(2027, 1, 4)} and {r.base for r in daily} == {"EUR"}
    history = rates.read(ECB_HISTORY, "EUR")
    assert len(history) == 8  # CYP's N/A is no rate
    treasury = rates.read(TREASURY, "EUR")
    assert [(r.base, r.currency) for r in treasury] == [("EUR", "CHF"), ("USD", "EUR")]
    path = tmp_path / "history.csv"
    path.write_text(ECB_HISTORY)
    assert "8 rates read: 8 added" in cli("rates", "import", str(path))
    assert "8 rates read: 0 added, 0 corrected, 8 already known" in cli("rates", "import",
                                                                         str(path))  # fmt: skip
    listed = cli("rates", "list", "--currency", "usd", "--on", "2027-01-02")
    assert listed.strip() == "1 EUR = 1.05 USD (from 2026-12-31)"
    assert AuditEntry.objects.filter(action="rates.imported").count() == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("day,code,value\n2027-01-04,USD,1.04\n", "the first line must be 'date,currency,rate'"),
        ("date,currency,rate\n2027-02-30,USD,1.04\n", "line 2: '2027-02-30' is not a date"),
        ("date,currency,rate\n2027-01-04,usd1,1.04\n", "line 2: 'USD1' is not a currency"),
        ("date,currency,rate\n2027-01-04,USD,-1\n", "line 2: '-1' is not a positive rate"),
        ("date,currency,rate\n2027-01-04,USD,NaN\n", "line 2: 'NaN' is not a positive rate"),
        ("date,currency,rate\n2027-01-04,USD,1e400\n", "line 2: '1e400' is not a positive rate"),
        ("date,currency,rate\n", "the file holds no rates"),
    ],
)
def test_a_bad_rate_file_is_refused_whole_with_its_lines_named(world, text, says):
    with pytest.raises(Invalid) as caught:
        rates.read(text, "EUR")
    assert says in str(caught.value)
    with pytest.raises(CommandError, match=says.split(":")[-1].strip()[:20]):
        cli("rates", "import", "-", stdin=text)
    assert not ExchangeRate.objects.exists()


def test_the_api_lists_and_adds_rates(world):
    def client(name, scopes=None):
        raw = tokens.create_token(world[name], "t", scopes)[1]
        return Client(headers={"Authorization": f"Bearer {raw}"})

    adam = client("adam", ["read", "write", "admin"])
    new = {"rates": [{"day": "2027-01-04", "currency": "USD", "rate": "1.04", "base": "EUR"}]}
    answer = adam.post("/api/v1/rates", json.dumps(new), "application/json")
    assert answer.status_code == 201 and answer.json() == {"added": 1, "changed": 0,
                                                           "unchanged": 0}  # fmt: skip
    listed = adam.get("/api/v1/rates", {"on": "2027-01-05"}).json()
    assert listed == [{"day": "2027-01-04", "currency": "USD", "rate": "1.04", "base": "EUR"}]
    bad = {"rates": [{"day": "2027-01-04", "currency": "usd", "rate": "-1", "base": "EUR"}]}
    answer = adam.post("/api/v1/rates", json.dumps(bad), "application/json")
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"rates[0].currency", "rates[0].rate"}
    assert client("rita").post("/api/v1/rates", json.dumps(new), "application/json").status_code \
        == 403  # fmt: skip


def test_the_same_amount_in_euro_and_in_yen_routes_differently(priced):
    rita = priced["rita"]
    euros = services.create(body("EUR", 30000, submit=True), rita, now=NOW)
    yen = services.create(body("JPY", 30000, submit=True), rita, now=NOW)
    assert [s.tier for s in euros.current_route()] == ["manager", "deal_desk"]
    assert [s.tier for s in yen.current_route()] == ["manager"]  # ¥30,000 is EUR 187.50
    assert yen.money == {"base": "EUR", "currency": "JPY", "rate": "0.00625",
                         "rate_day": "2027-01-04", "list_value_base": 750.0,
                         "concession_base": 187.5}  # fmt: skip
    # 5,000,000 yen is EUR 31,250: over the deal desk's EUR 25,000
    large = services.create(body("JPY", 5_000_000, submit=True), rita, now=NOW)
    assert [s.tier for s in large.current_route()] == ["manager", "deal_desk"]
    assert large.risk["financial"] == 3


def test_a_request_in_a_currency_without_a_rate_is_refused_at_its_currency(priced):
    for door in (services.create, lambda b, who, now: services.simulate(b, now=now)):
        with pytest.raises(Invalid) as caught:
            door(body("CHF", 1000), priced["rita"], now=NOW)
        (problem,) = caught.value.problems
        assert problem.field == "financials.currency" and problem.code == "no_rate"
        assert "no exchange rate from CHF to EUR in force on 2027-01-04" in problem.message
    raw = tokens.create_token(priced["rita"], "t")[1]
    answer = Client(headers={"Authorization": f"Bearer {raw}"}).post(
        "/api/v1/waivers", json.dumps(body("XYZ", 1000)), "application/json"
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == \
        "financials.currency"  # fmt: skip
    before = cli("rates", "list", "--on", "2027-01-01")
    assert before == ""  # the rate of 4 January was not in force before it
    cli("rates", "import", "-", stdin="date,currency,rate\n2026-01-01,JPY,160\n")  # for today
    yen = Client(headers={"Authorization": f"Bearer {raw}"}).post(
        "/api/v1/waivers", json.dumps(body("JPY", 16000)), "application/json"
    )
    assert yen.status_code == 201 and yen.json()["money"]["concession_base"] == 100.0


def test_rates_published_later_change_no_past_waiver_metric_or_replay(priced):
    rita, mona = priced["rita"], priced["mona"]
    ref = services.create(body("JPY", 3_900_000, submit=True), rita, now=NOW).reference
    assert services.get(ref).money["concession_base"] == 24375.0  # under EUR 25,000
    services.decide(ref, mona, "approve", now=NOW)
    before = metrics.compute(Period.parse("2027-Q1"), now=NOW)["concessions"]["total"]
    cli("rates", "import", "-", stdin="date,currency,rate\n2027-01-05,JPY,100\n")
    waiver = services.get(ref)
    assert waiver.money["concession_base"] == 24375.0 and waiver.money["rate_day"] == "2027-01-04"
    assert metrics.compute(Period.parse("2027-Q1"), now=NOW)["concessions"]["total"] == before
    policy = services.policy_of(waiver)
    assert replay(policy, NOW - timedelta(days=1)).changes == []
    # a request submitted after the new rate is converted at it: EUR 39,000, deal desk too
    later = services.create(body("JPY", 3_900_000, submit=True), rita, now=NOW + timedelta(1))
    assert later.money["concession_base"] == 39000.0
    assert [s.tier for s in later.current_route()] == ["manager", "deal_desk"]


def test_the_report_adds_up_in_the_base_currency_once_per_request(priced):
    rita = priced["rita"]
    cli("rates", "import", "-", stdin=TREASURY)  # CHF, and a USD quote the other way round
    figures = [("EUR", 1000.10), ("USD", 1040.0), ("JPY", 160_001), ("CHF", 930.0)]
    for currency, concession in figures:
        two_products = body(currency, concession, products=["AN-EDGE", "COL-SUITE"], submit=True)
        ref = services.create(two_products, rita, now=NOW).reference
        approve_fully(ref, priced)
        finish_required_tasks(ref, priced["ivan"])
    # By hand: 1,000.10 + 1,040 / 1.04 + 160,001 / 160 + 930 / 0.93, each to the cent
    by_hand = Decimal("1000.10") + Decimal("1000.00") + Decimal("1000.01") + Decimal("1000.00")
    money_ = metrics.compute(Period.parse("2027-Q1"), now=NOW)["concessions"]
    assert round(Decimal(str(money_["total"])), 2) == by_hand
    assert money_["currency"] == "EUR"
    # on two products, each request counts half to each: the products add up to the total
    assert money_["by_product"] == pytest.approx({"AN-EDGE": 2000.055, "COL-SUITE": 2000.055})
    assert sum(money_["by_product"].values()) == pytest.approx(money_["total"])
    built = report.build(Period.parse("2027-Q1"), now=NOW)
    key = dict((label, now) for label, now, _before in built["key"])
    assert key["Concessions granted (EUR)"] == "4,000.11"
