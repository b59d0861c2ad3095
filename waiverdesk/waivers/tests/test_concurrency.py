"""Real concurrent clients on PostgreSQL: no double approval, no duplicate reference."""

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied
from waiverdesk.directory import services as directory
from waiverdesk.notifications import services as notify
from waiverdesk.testing import NOW, at_once, postgres_only, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Approval

pytestmark = [postgres_only, pytest.mark.django_db(transaction=True)]


def test_twenty_managers_approving_one_step_at_once_give_exactly_one_approval(committed_world):
    managers = [directory.add_user(f"manager{i}", ["sales_manager"]) for i in range(20)]
    ref = services.create(
        request_body(submit=True), User.objects.get(username="rita"), now=NOW
    ).reference

    results = at_once(20, lambda i: services.decide(ref, managers[i], "approve", now=NOW))

    approvals = [r for r in results if isinstance(r, Approval)]
    refusals = [r for r in results if isinstance(r, Denied)]
    assert len(approvals) == 1 and len(refusals) == 19, results
    assert {r.code for r in refusals} == {"invalid_state"}
    assert Approval.objects.filter(waiver__reference=ref).count() == 1
    assert services.get(ref).status == "approved"
    actions = Counter(AuditEntry.objects.filter(object_ref=ref).values_list("action", flat=True))
    assert actions["waiver.decided"] == 1 and actions["waiver.refused"] == 19
    assert audit.verify().ok


def test_concurrent_creates_get_unique_consecutive_references(committed_world):
    rita = User.objects.get(username="rita")
    results = at_once(20, lambda i: services.create(request_body(), rita, now=NOW).reference)
    assert sorted(results) == [f"WVR-2027-{n:05d}" for n in range(1, 21)]
    assert audit.verify().ok


def test_two_sweepers_at_once_expire_each_waiver_once(committed_world):
    rita, mona = (User.objects.get(username=n) for n in ("rita", "mona"))
    # Three: a customer's fourth exception in a year would also need finance.
    refs = [services.create(request_body(submit=True), rita, now=NOW).reference for _ in range(3)]
    for ref in refs:
        services.decide(ref, mona, "approve", now=NOW)
    after_end = NOW.replace(month=4)
    done = at_once(4, lambda i: services.sweep(now=after_end))
    assert sorted(r for result in done for r, _ in result) == sorted(refs)
    assert AuditEntry.objects.filter(action="waiver.expired").count() == 3
    assert audit.verify().ok


def test_two_workers_at_once_remind_escalate_and_lapse_each_request_once(committed_world):
    from datetime import timedelta

    from waiverdesk.notifications.models import Message

    rita = User.objects.get(username="rita")
    for name in ("mona", "mark", "dana", "dirk", "rita"):
        User.objects.filter(username=name).update(email=f"{name}@example.com")
    refs = [services.create(request_body(submit=True), rita, now=NOW).reference for _ in range(3)]
    late = NOW + timedelta(hours=80)  # past the manager's SLA and its escalation
    done = at_once(4, lambda i: services.chase(now=late))
    assert sorted(r for result in done for r, _ in result) == sorted(refs * 2)
    for ref in refs:
        told = Counter(Message.objects.filter(object_ref=ref, channel="email")
                       .values_list("event", flat=True))  # fmt: skip
        assert told["step.overdue"] == 2 and told["step.escalated"] == 2  # two people each
    assert AuditEntry.objects.filter(action="step.overdue").count() == 3
    assert AuditEntry.objects.filter(action="step.escalated").count() == 3
    lapsing = NOW.replace(month=3, day=16)  # after their end, nobody having decided
    done = at_once(4, lambda i: services.sweep(now=lapsing))
    assert sorted(r for result in done for r, _ in result) == sorted(refs)
    assert AuditEntry.objects.filter(action="waiver.lapsed").count() == 3
    assert Message.objects.filter(event="waiver.lapsed", channel="email").count() == 3 * 5
    assert audit.verify().ok


def test_eight_creates_at_once_overlap_instead_of_waiting_for_each_others_commit(
    committed_world, monkeypatch
):
    """Each create holds its transaction open while it tells people (after its reference is
    taken and its rows are written): all eight are in there at the same time, so none waits
    for another's commit; only their audit entries are appended one after another."""
    rita = User.objects.get(username="rita")
    services.prepare_references(NOW)  # the worker's job: the year's numbers are counted ahead
    inside = threading.Barrier(8, timeout=20)
    told = notify.publish_many

    def publish_when_all_are_inside(event, items, now, personal=None):
        if event == "waiver.submitted":
            inside.wait()  # broken (and the test failed) if one waits for another's commit
        return told(event, items, now, personal)

    monkeypatch.setattr(notify, "publish_many", publish_when_all_are_inside)
    results = at_once(8, lambda i: services.create(request_body(submit=True), rita, now=NOW))

    assert not inside.broken and all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.reference for r in results) == [f"WVR-2027-{n:05d}" for n in range(1, 9)]
    entries = AuditEntry.objects.filter(action__in=["waiver.created", "waiver.submitted"])
    assert entries.count() == 16 and audit.verify().ok
    # Each create's two entries are next to each other: appended together at its end.
    seqs = sorted(entries.values_list("object_ref", "seq"), key=lambda e: e[1])
    pairs = zip(seqs[::2], seqs[1::2], strict=True)
    assert all(a[0] == b[0] and b[1] == a[1] + 1 for a, b in pairs)
