"""Use against what an exception allows, with a fixed clock: each kind of leakage, under-use,
and nothing on a clean data set. rita's temporary access grants 50 seats of AN-EDGE
(Analytics) to GLOBEX-002 from 2027-02-01 to 2027-03-15 and promised 50 in use."""

import re
from datetime import date, timedelta

import pytest
from django.test import Client

from waiverdesk.directory import services as directory
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, finish_required_tasks, request_body
from waiverdesk.usage import services as usage
from waiverdesk.usage import utilization
from waiverdesk.usage.models import Flag
from waiverdesk.waivers import services

START, END = date(2027, 2, 1), date(2027, 3, 15)
n = iter(range(1_000_000))


def used(quantity, day, product="AN-EDGE", metric="seats"):
    record = {"record_id": f"m{next(n)}", "customer": "GLOBEX-002", "product": product,
              "metric": metric, "quantity": quantity, "period_start": day.isoformat(),
              "period_end": day.isoformat()}  # fmt: skip
    assert usage.ingest([(0, record)], NOW).accepted == 1


@pytest.fixture
def active(world):
    directory.add_product("AN-BI", "BI Dashboards", "Analytics", "low")
    world["olga"].email = "olga@example.com"
    world["olga"].save()
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    finish_required_tasks(ref, world["ivan"])
    services.sweep(now=NOW.replace(month=2, day=1))
    return services.get(ref)


def findings(waiver, today):
    return {kind for kind, _ in utilization.of(waiver, today).findings}


def test_use_within_scope_period_and_products_finds_nothing(active):
    used(45, START + timedelta(days=3))
    used(50, START + timedelta(days=35))
    used(30, END + timedelta(days=20), product="DB-ENT")  # another family, after the end
    found = utilization.of(active, END + timedelta(days=30))
    assert found.findings == []
    assert (found.allowed, found.peak) == (50, 50)
    assert found.months == [{"month": "2027-02", "peak": 45}, {"month": "2027-03", "peak": 50}]


def test_use_beyond_the_granted_seats_is_leakage(active):
    used(64, START + timedelta(days=10))
    assert findings(active, START + timedelta(days=11)) == {"over_scope"}


def test_use_after_the_end_is_leakage_unless_another_exception_covers_it(active, world):
    used(50, START + timedelta(days=30))
    assert findings(active, END + timedelta(days=1)) == set()
    used(12, END + timedelta(days=5))
    assert findings(active, END + timedelta(days=6)) == {"after_end"}
    follow_up = services.create(
        request_body(start="2027-03-16", end="2027-04-30", submit=True), world["sam"], now=NOW
    )
    services.decide(follow_up.reference, world["mona"], "approve", now=NOW)
    assert findings(active, END + timedelta(days=6)) == set()  # in force: the use is covered


def test_use_of_a_product_the_exception_does_not_cover_is_leakage(active):
    used(50, START + timedelta(days=30))
    used(8, START + timedelta(days=30), product="AN-BI")  # same family, not covered
    assert findings(active, START + timedelta(days=31)) == {"uncovered_product"}


def test_less_use_than_promised_is_under_use_once_half_the_period_has_passed(active):
    used(20, START + timedelta(days=5))
    assert findings(active, START + timedelta(days=10)) == set()
    assert findings(active, START + timedelta(days=30)) == {"under_use"}


def test_the_worker_scan_flags_once_and_tells_the_control_owner(active, world):
    used(64, START + timedelta(days=10))
    day = NOW.replace(month=2, day=20)
    assert [kind for _, kind in utilization.scan(day)] == [
        "over_scope: peak use 64 seats, 50 granted"
    ]
    assert utilization.scan(day) == []
    flag = Flag.objects.get()
    assert (flag.waiver, flag.kind) == (active, "over_scope")
    told = Message.objects.filter(event="waiver.flagged", recipient="olga@example.com")
    assert told.count() == 1
    olga = Client()
    olga.force_login(world["olga"])
    page = olga.get(f"/requests/{active.reference}/").content.decode()
    assert 'id="usage-chart"' in page and "Overscope: peak use 64 seats" in page
    dashboard = olga.get("/dashboard/").content.decode()
    assert "<title>Dashboard · waiverdesk</title>" in dashboard
    assert re.search(rf'id="flags".*{active.reference}.*over scope', dashboard, re.S | re.I)
