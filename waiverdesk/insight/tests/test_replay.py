"""Policy replay (T2): a draft that changes one threshold changes exactly the routes that cross
it; publishing the draft is one click, audited and announced in plain language (K2)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.policy import load_policy
from waiverdesk.insight.replay import _requests, replay
from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message
from waiverdesk.policies.models import PolicyVersion
from waiverdesk.testing import NOW, as_read, pseudonym, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver

SINCE = NOW - timedelta(days=1)
DEAL_DESK = "request.type == 'volume_discount' || request.financials.concession_base >= 25000.0"


def draft(old: str, new: str) -> str:
    text = settings.DEFAULT_POLICY_FILE.read_text()
    assert text.count(old) == 1
    return text.replace(old, new)


@pytest.fixture
def past(world):
    """Requests with concessions either side of the deal desk's 25,000 and of 20,000."""
    refs = {}
    for concession in (15000, 22000, 24000, 26000):
        body = request_body(submit=True, financials={"currency": "EUR", "list_value": 100000,
                                                     "concession": concession})  # fmt: skip
        refs[concession] = services.create(body, world["rita"], now=NOW).reference
    return refs


def test_the_active_policy_replayed_changes_nothing(past):
    result = replay(load_policy(settings.DEFAULT_POLICY_FILE.read_text()), SINCE)
    assert result.requests == 4 and result.changes == []
    assert result.load["manager"] == (4, 4) and result.load["deal_desk"] == (1, 1)


def test_lowering_one_threshold_changes_exactly_the_routes_that_cross_it(past):
    lower = draft(DEAL_DESK, DEAL_DESK.replace("25000.0", "20000.0"))
    result = replay(load_policy(lower), SINCE)
    assert sorted(c.reference for c in result.changes) == sorted([past[22000], past[24000]])
    for change in result.changes:
        assert change.what == ["route"]
        assert (change.before.route, change.after.route) == (["manager"], ["manager", "deal_desk"])
    assert result.load["deal_desk"] == (1, 3) and result.load["manager"] == (4, 4)
    assert dict(result.counts) == {"route": 2}


def test_a_shorter_maximum_makes_requests_ineligible(past):
    shorter = draft("max_duration_days: 120\n    review_window_days: 60",
                    "max_duration_days: 30\n    review_window_days: 30")  # fmt: skip
    result = replay(load_policy(shorter), SINCE)
    assert result.counts["eligibility"] == 4  # (the shorter review window adds risk too)
    assert all(not c.after.eligible and c.after.problems for c in result.changes)
    assert result.load["manager"] == (4, 0)


def test_the_command_prints_what_would_change(past, tmp_path, capsys):
    path = tmp_path / "draft.yaml"
    path.write_text(draft(DEAL_DESK, DEAL_DESK.replace("25000.0", "20000.0")))
    call_command("policy", "simulate", "--replay", str(path), "--since", "2027-01-01")
    out = capsys.readouterr().out
    assert "over 4 requests" in out
    assert "would change: eligibility of 0, risk level of 0, route of 2" in out
    assert f"{past[22000]} temporary_access GLOBEX-002: route manager -> manager+deal_desk" in out


def test_the_policy_owner_replays_proposes_a_second_approves_and_everyone_is_told(past, world):
    for user in world.values():
        user.email = f"{user.username}@example.com"
        user.save()
    notify.set_muted(world["sam"], ["policy.published"])
    paula = Client()
    paula.force_login(world["paula"])
    lower = draft(DEAL_DESK, DEAL_DESK.replace("25000.0", "20000.0"))
    page = paula.post("/policy/replay/", {"draft": lower, "since": "2027-01-01",
                                          "replay": "1"}).content.decode()  # fmt: skip
    assert page.count("manager → deal_desk") == 2 and past[24000] in page
    replayed = load_policy(lower).digest
    assert f'name="replayed" value="{replayed}"' in page
    publish = {"draft": lower, "since": "2027-01-01", "publish": "1", "note": "deal desk from 20k",
               "replayed": replayed}  # fmt: skip
    answer = paula.post("/policy/replay/", publish)
    assert answer["Location"] == "/policy/versions/"
    proposal = PolicyVersion.objects.get(number=2)
    assert proposal.state == "proposed" and not proposal.is_active
    assert proposal.sha256 == replayed and proposal.proposed_by == world["paula"]
    assert PolicyVersion.objects.get(is_active=True).number == 1
    assert not Message.objects.filter(event="policy.published").exists()

    # paula may not approve her own proposal; the refusal is recorded
    refused = paula.post("/policy/versions/2/approve/", follow=True).content.decode()
    assert "a second policy admin must approve it" in refused
    assert AuditEntry.objects.filter(action="policy.refused", actor=pseudonym("paula")).exists()
    assert PolicyVersion.objects.get(is_active=True).number == 1

    adam = Client()
    adam.force_login(world["adam"])
    listed = adam.get("/policy/versions/").content.decode()
    assert "waiting for a second policy admin" in listed and "Approve v2" in listed
    adam.post("/policy/versions/2/approve/")
    version = PolicyVersion.objects.get(is_active=True)
    assert version.number == 2 and version.published_by == world["adam"]
    assert version.proposed_by == world["paula"]
    entries = AuditEntry.objects.filter(object_ref="v2")
    assert [(e.action, as_read(e)[0]) for e in entries] == [
        ("policy.proposed", "paula"),
        ("policy.refused", "paula"),
        ("policy.published", "adam"),
    ]
    said = "the concession in the base currency is 20,000 or more"
    assert any(
        said in line and line.startswith("Deal desk: applies when") for line in version.changes
    )
    mails = Message.objects.filter(event="policy.published")
    assert "sam@example.com" not in mails.values_list("recipient", flat=True)
    assert mails.filter(recipient="rita@example.com").count() == 1
    assert said in mails.first().body and "deal desk from 20k" in mails.first().body
    assert said in paula.get("/policy/versions/").content.decode()

    rita = Client()
    rita.force_login(world["rita"])
    assert rita.post("/policy/replay/", {"draft": lower, "publish": "1"}).status_code == 403
    assert rita.post("/policy/versions/2/approve/").status_code == 302
    assert PolicyVersion.objects.count() == 2


def test_what_is_published_is_exactly_what_was_replayed(past, world):
    paula = Client()
    paula.force_login(world["paula"])
    replayed = draft(DEAL_DESK, DEAL_DESK.replace("25000.0", "20000.0"))
    edited = replayed.replace("20000.0", "10000.0")
    digest = load_policy(replayed).digest
    for text, replayed_digest in ((edited, digest), (replayed, ""), (replayed, "0" * 64)):
        form = {"draft": text, "since": "2027-01-01", "publish": "1", "replayed": replayed_digest}
        page = paula.post("/policy/replay/", form).content.decode()
        assert "the text changed after it was replayed; replay it again" in page
    assert PolicyVersion.objects.count() == 1


def test_in_a_sandbox_a_version_takes_effect_without_a_second_approver(past, world, settings):
    settings.SANDBOX = True
    paula = Client()
    paula.force_login(world["paula"])
    text = draft(DEAL_DESK, DEAL_DESK.replace("25000.0", "20000.0"))
    paula.post("/policy/replay/", {"draft": text, "since": "2027-01-01", "publish": "1",
                                   "replayed": load_policy(text).digest})  # fmt: skip
    assert PolicyVersion.objects.get(is_active=True).number == 2


def test_a_broken_draft_is_explained_and_nothing_is_published(past, world):
    paula = Client()
    paula.force_login(world["paula"])
    page = paula.post("/policy/replay/", {"draft": "name: x\ntypes: {}", "since": "2027-01-01",
                                          "publish": "1"}).content.decode()  # fmt: skip
    assert "The draft cannot be used" in page and "types" in page
    assert PolicyVersion.objects.count() == 1


def test_replay_uses_each_customers_history_as_it_was(world):
    # A customer's fourth request in a year has three before it, which raises its
    # reputational risk (the default policy); replayed, the first three still see fewer.
    refs = [services.create(request_body(submit=True), world["rita"],
                            now=NOW + timedelta(hours=i)).reference for i in range(4)]  # fmt: skip
    scores = [services.get(r).risk["reputational"] for r in refs]
    assert scores[3] > scores[0]
    result = replay(load_policy(settings.DEFAULT_POLICY_FILE.read_text()),
                    datetime(2027, 1, 1, tzinfo=UTC))  # fmt: skip
    assert result.changes == []
    seen = [facts.customer_exceptions_last_365_days for _w, facts, _r in _requests(
        Waiver.objects.filter(reference__in=refs))]  # fmt: skip
    assert seen == [0, 1, 2, 3]
