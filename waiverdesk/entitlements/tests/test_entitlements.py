"""What exceptions grant and revert: recorded once, told once, summed per account."""

import csv
import io
import json

import pytest
from django.core.management import call_command

from waiverdesk.api import services as tokens
from waiverdesk.entitlements import services as entitlements
from waiverdesk.entitlements.models import EntitlementChange
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, finish_required_tasks, request_body
from waiverdesk.waivers import services
from waiverdesk.webhooks import services as webhooks

START, AFTER_END = NOW.replace(month=2, day=1), NOW.replace(month=3, day=16)


def in_force(world, **changes):
    """rita's temporary access (50 seats on AN-EDGE until 2027-03-15), approved, its work done."""
    ref = services.create(request_body(submit=True, **changes), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    finish_required_tasks(ref, world["ivan"])
    return ref


def events(kind):
    return [json.loads(m.body) for m in Message.objects.filter(channel="webhook", event=kind)]


@pytest.fixture
def subscribed(world, settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = True
    webhooks.register("http://127.0.0.1:9/hooks", [], world["adam"])


def test_taking_effect_grants_and_ending_reverts_each_once(world, subscribed):
    ref = in_force(world)
    services.sweep(now=START)
    services.sweep(now=START)
    grants = EntitlementChange.objects.filter(change="grant")
    assert sorted((g.product.code, g.item, g.value) for g in grants) == [
        ("AN-EDGE", "seats", 50),
        ("AN-EDGE", "term_end", "2027-03-15"),
    ]
    (granted,) = events("entitlement.granted")
    assert granted["data"]["reference"] == ref
    assert granted["data"]["items"] == {"seats": 50, "term_end": "2027-03-15"}

    services.sweep(now=AFTER_END)
    services.sweep(now=AFTER_END)
    assert EntitlementChange.objects.filter(change="revert").count() == 2
    assert len(events("entitlement.reverted")) == 1
    assert entitlements.effective() == []


def test_termination_reverts_and_an_exception_never_in_effect_reverts_nothing(world, subscribed):
    ref = in_force(world)
    services.sweep(now=START)
    services.terminate(ref, world["olga"], "renewal signed", now=START)
    assert EntitlementChange.objects.filter(change="revert").count() == 2
    unused = services.create(request_body(submit=True), world["sam"], now=NOW).reference
    services.decide(unused, world["mona"], "approve", now=NOW)  # its work is never done
    services.sweep(now=AFTER_END)
    assert not EntitlementChange.objects.filter(waiver__reference=unused).exists()
    assert len(events("entitlement.reverted")) == 1


def test_the_effective_delta_combines_what_is_in_force_per_account(world):
    in_force(world)
    in_force(world, scope={"seats": 20})
    services.sweep(now=START)
    (account,) = entitlements.effective(customer="GLOBEX-002")
    assert account["product"] == "AN-EDGE"
    assert account["items"] == {"seats": 70, "term_end": "2027-03-15"}
    assert len(account["waivers"]) == 2


def test_changes_export_as_csv_in_order(world, capsys):
    ref = in_force(world)
    services.sweep(now=START)
    services.sweep(now=AFTER_END)
    call_command("entitlements", "export", "--customer", "GLOBEX-002")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["change"], r["item"], r["value"]) for r in rows] == [
        ("grant", "seats", "50"),
        ("grant", "term_end", "2027-03-15"),
        ("revert", "seats", "50"),
        ("revert", "term_end", "2027-03-15"),
    ]
    assert {r["waiver"] for r in rows} == {ref}


def test_licensing_operations_read_them_through_the_api(world, client):
    in_force(world)
    services.sweep(now=START)
    ivan = tokens.create_token(world["ivan"], "licensing", ["read"])[1]
    rita = tokens.create_token(world["rita"], "mine", ["read"])[1]
    got = client.get("/api/v1/entitlements", HTTP_AUTHORIZATION=f"Bearer {ivan}")
    assert [c["item"] for c in got.json()] == ["seats", "term_end"]
    since = got.json()[-1]["id"]
    later = client.get(f"/api/v1/entitlements?since={since}", HTTP_AUTHORIZATION=f"Bearer {ivan}")
    assert later.json() == []
    effective = client.get("/api/v1/entitlements/effective", HTTP_AUTHORIZATION=f"Bearer {ivan}")
    assert effective.json()[0]["items"]["seats"] == 50
    assert (
        client.get("/api/v1/entitlements", HTTP_AUTHORIZATION=f"Bearer {rita}").status_code == 403
    )
