"""Each metric on the quarter of conftest.py, whose true value is known by construction."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.insight import metrics
from waiverdesk.insight.metrics import Filters, Period
from waiverdesk.testing import NOW, postgres_only, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import RouteStep

Q1 = Period.parse("2027-Q1")
LATER = datetime(2027, 4, 1, tzinfo=UTC)  # the quarter over, the unattested review late


def test_counts_rates_and_cycle_times(quarter):
    f = metrics.compute(Q1, now=LATER)
    assert (f["submitted"], f["approved"], f["rejected"], f["decided"]) == (5, 2, 1, 3)
    assert f["approval_rate"] == pytest.approx(2 / 3, abs=1e-4)
    # Decided after 10, 20 and 30 hours: the median 20, the 90th percentile 20 + 0.8 × 10.
    assert f["cycle_hours"] == {"n": 3, "p50": 20.0, "p90": 28.0}
    assert f["cycle_by_tier"] == {"manager": {"n": 3, "p50": 20.0, "p90": 28.0}}
    # Decided 4 January at 19:00 and 5 January at 05:00, in force 1 February at 00:00.
    assert f["activation_hours"] == {"n": 2, "p50": 648.0, "p90": 652.0}
    assert f["renewed_share"] == 0.5  # A of A and B


def test_adherence(quarter):
    assert metrics.compute(Q1, now=LATER)["adherence"] == {
        "documentation_complete": 1.0,  # the type asks for no evidence file
        "reviews_on_time": 0.5,  # one attested in time, one never
        "expired_on_time": 0.5,  # B the day after its end, A ten days late
        "no_leakage": 0.5,  # A leaked
    }
    # Before the unattested review falls due it is not yet late, so not yet counted.
    early = metrics.compute(Q1, now=datetime(2027, 2, 10, tzinfo=UTC))
    assert early["adherence"]["reviews_on_time"] == 1.0


def test_concessions_and_leakage(quarter):
    f = metrics.compute(Q1, now=LATER)
    assert f["concessions"] == {
        "total": 3000.0,  # A and B; not the rejected C nor the pending D
        "by_month": {"2027-01": 3000.0},
        "by_product": {"AN-EDGE": 3000.0},
        "by_region": {"AMER": 3000.0},
        "by_type": {"temporary_access": 3000.0},
        "currency": "EUR",
    }
    assert f["leakage"] == {"findings": 1, "waivers": 1}


def test_a_concession_on_two_products_is_split_between_them(quarter, world):
    # Another customer's: Globex has had three exceptions this quarter, which adds a tier.
    money = {"currency": "EUR", "list_value": 20000, "concession": 500}
    body = request_body(submit=True, customer="ACME-001", products=["AN-EDGE", "COL-SUITE"],
                        financials=money)  # fmt: skip
    both = services.create(body, world["rita"], now=NOW).reference
    services.decide(both, world["mona"], "approve", "seen", now=NOW + timedelta(hours=5))
    f = metrics.compute(Q1, now=LATER)["concessions"]
    assert f["total"] == 3500.0
    assert f["by_product"] == {"AN-EDGE": 3250.0, "COL-SUITE": 250.0}
    assert metrics.compute(Q1, Filters(family="Collaboration"), LATER)["concessions"] == {
        "total": 500.0,
        "by_month": {"2027-01": 500.0},
        "by_product": {"AN-EDGE": 250.0, "COL-SUITE": 250.0},
        "by_region": {"AMER": 500.0},
        "by_type": {"temporary_access": 500.0},
        "currency": "EUR",
    }


@postgres_only
def test_the_waits_read_in_one_statement_equal_each_grouping_read_alone(quarter):
    decided = RouteStep.objects.filter(metrics.in_cohort(Q1, via="waiver__"),
                                       closed_at__isnull=False)  # fmt: skip
    groupings = {"by_role": ("role",), "by_status": ("status",),
                 "by_version": ("waiver__policy_version__number", "tier")}  # fmt: skip
    together = metrics.grouped_quantiles(decided, "opened_at", "closed_at", **groupings)
    alone = {name: metrics.quantiles(decided, "opened_at", "closed_at",
                                     by=by[0] if len(by) == 1 else by)
             for name, by in groupings.items()}  # fmt: skip
    assert together == alone
    assert together["by_status"] == {
        "approved": {"n": 2, "p50": 15.0, "p90": 19.0},  # A after 10 hours, B after 20
        "closed": {"n": 1, "p50": 1911.0, "p90": 1911.0},  # D's, when it lapsed
        "rejected": {"n": 1, "p50": 30.0, "p90": 30.0},
    }


def test_filters_and_other_periods_narrow_the_cohort(quarter):
    assert metrics.compute(Q1, Filters(type="volume_discount"), LATER)["submitted"] == 0
    assert metrics.compute(Q1, Filters(region="EMEA"), LATER)["submitted"] == 0
    assert metrics.compute(Q1, Filters(family="Analytics"), LATER)["submitted"] == 5
    assert metrics.compute(Q1, Filters(family="Security"), LATER)["submitted"] == 0
    assert metrics.compute(Period.parse("2027-Q2"), now=LATER)["submitted"] == 0
    assert metrics.compute(Period.parse("2027-01"), now=LATER)["submitted"] == 5


def test_where_requests_wait(quarter):
    waits = metrics.bottlenecks(Q1, now=LATER)
    assert waits["by_role"] == {"sales_manager": {"n": 3, "p50": 20.0, "p90": 28.0}}
    assert waits["by_type"] == {"temporary_access": {"n": 3, "p50": 20.0, "p90": 28.0}}
    assert waits["by_version"] == {"1": {"manager": {"n": 3, "p50": 20.0, "p90": 28.0}}}
    # D and R wait still, since 4 January 09:00: 2,079 hours by 1 April.
    # D, a temporary access nobody decided, lapsed 30 days after its start (its type says
    # so): only the renewal still waits, and D is counted as lapsed.
    assert waits["pending"] == {"manager": {"n": 1, "p50": 2079.0, "p90": 2079.0}}
    assert metrics.compute(Q1, now=LATER)["lapsed"] == 1


@pytest.mark.parametrize(
    ("text", "start", "end", "before"),
    [
        ("2027-Q1", "2027-01-01", "2027-04-01", "2026-Q4"),
        ("2027-03", "2027-03-01", "2027-04-01", "2027-02"),
        ("2027-01", "2027-01-01", "2027-02-01", "2026-12"),
        ("2027", "2027-01-01", "2028-01-01", "2026"),
    ],
)
def test_periods(text, start, end, before):
    period = Period.parse(text)
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)
    assert period.previous().label == before


def test_the_page_the_csv_and_the_api_show_the_same_figures(quarter, world, settings):
    audrey = Client()
    audrey.force_login(world["audrey"])
    page = audrey.get("/metrics/?period=2027-Q1").content.decode()
    assert "approved (2 of 3 decided)" in page and "67 %" in page
    rows = audrey.get("/metrics.csv?period=2027-Q1").content.decode().splitlines()
    assert "approval_rate,0.6667" in rows and "cycle_hours.p90,28.0" in rows
    assert "wait.by_role.sales_manager.p50,20.0" in rows
    assert audrey.get("/metrics/?period=2027-Q9").status_code == 200  # a bad period is said
    assert "a year (2027), a quarter" in audrey.get("/metrics/?period=2027-Q9").content.decode()

    raw = tokens.create_token(world["audrey"], "t", ["read"])[1]
    answer = Client().get("/api/v1/metrics?period=2027-Q1&type=temporary_access",
                          HTTP_AUTHORIZATION=f"Bearer {raw}").json()  # fmt: skip
    assert answer["figures"]["cycle_hours"]["p50"] == 20.0
    assert answer["waits"]["by_role"]["sales_manager"]["n"] == 3
    rita = Client()
    rita.force_login(world["rita"])
    assert rita.get("/metrics/").status_code == 403
