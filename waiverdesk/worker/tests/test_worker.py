"""The worker with a fixed clock: activation, expiry, reminders, conditions, and the messages
they send, received by a real SMTP server and a real webhook endpoint."""

import json
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.test import Client

from waiverdesk import clock
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Invalid
from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message, Preference
from waiverdesk.testing import NOW, finish_required_tasks, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Condition
from waiverdesk.webhooks import services as webhooks
from waiverdesk.worker import jobs

START, END = date(2027, 2, 1), date(2027, 3, 15)  # the period of request_body()


def at(day: date, hour: int = 9, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), UTC)


@pytest.fixture
def people(world):
    """Everyone has an email address: rita@example.com, …"""
    User.objects.update(email=Concat(F("username"), Value("@example.com")))
    return {u.username: u for u in User.objects.all()}


def approved(people):
    """rita's low-risk request, approved by mona (the only step on its route), its required
    implementation work done."""
    waiver = services.create(request_body(submit=True), people["rita"], now=NOW)
    services.decide(waiver.reference, people["mona"], "approve", now=NOW)
    finish_required_tasks(waiver.reference, people["ivan"])
    return services.get(waiver.reference)


def mails_to(received, address, subject_part):
    return [m for m in received if m["To"] == address and subject_part in m["Subject"]]


def test_a_waiver_is_active_one_second_before_its_end_and_expired_one_second_after(people):
    waiver = approved(people)
    services.sweep(at(START, 0, 0, 0))
    services.sweep(at(END, 23, 59, 59))
    assert services.get(waiver.reference).status == "active"
    services.sweep(at(END + timedelta(days=1), 0, 0, 0))
    assert services.get(waiver.reference).status == "expired"


def test_two_worker_runs_expire_once_and_send_one_email_and_one_webhook(
    people, smtp_server, webhook_receiver
):
    hook = webhooks.register(webhook_receiver.url, ["waiver.expired"], people["adam"])
    webhook_receiver.secret = hook.secret
    waiver = approved(people)
    jobs.tick(at(START))
    smtp_server.clear()

    after_end = at(END + timedelta(days=1))
    jobs.tick(after_end)
    jobs.tick(after_end)

    assert services.get(waiver.reference).status == "expired"
    assert (
        AuditEntry.objects.filter(object_ref=waiver.reference, action="waiver.expired").count() == 1
    )
    hooks = [json.loads(a["body"]) for a in webhook_receiver.delivered()]
    assert [(h["type"], h["data"]["reference"]) for h in hooks] == [
        ("waiver.expired", waiver.reference)
    ]
    assert all(a["verified"] for a in webhook_receiver.attempts)
    assert len(mails_to(smtp_server, "rita@example.com", "has expired")) == 1
    assert len(mails_to(smtp_server, "olga@example.com", "has expired")) == 1


def test_a_receiver_that_fails_gets_the_same_webhook_id_on_every_retry(world, webhook_receiver):
    hook = webhooks.register(webhook_receiver.url, ["waiver.submitted"], world["adam"])
    webhook_receiver.secret = hook.secret
    webhook_receiver.fail_first = 2
    services.create(request_body(submit=True), world["rita"], now=NOW)  # nobody has an email

    assert notify.deliver(NOW) == Counter(retry=1)
    assert notify.deliver(NOW + timedelta(seconds=5)) == Counter()  # not due yet: backoff
    assert notify.deliver(NOW + timedelta(seconds=10)) == Counter(retry=1)
    assert notify.deliver(NOW + timedelta(seconds=70)) == Counter(sent=1)

    ids = {a["id"] for a in webhook_receiver.attempts}
    assert len(webhook_receiver.attempts) == 3 and len(ids) == 1
    assert all(a["verified"] for a in webhook_receiver.attempts)  # re-signed on every try
    assert Message.objects.get(channel="webhook").state == "sent"


def test_an_endpoint_that_answers_410_is_disabled(people, webhook_receiver):
    hook = webhooks.register(webhook_receiver.url, [], people["adam"])
    webhook_receiver.secret, webhook_receiver.answer = hook.secret, 410
    services.create(request_body(submit=True), people["rita"], now=NOW)
    notify.deliver(NOW)
    hook.refresh_from_db()
    assert not hook.active
    services.create(request_body(submit=True), people["sam"], now=NOW)
    assert not Message.objects.filter(channel="webhook", state="pending").exists()


def test_a_change_that_rolls_back_sends_nothing(people, smtp_server, webhook_receiver):
    webhook_receiver.secret = webhooks.register(webhook_receiver.url, [], people["adam"]).secret
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create(request_body(submit=True), people["rita"], now=NOW)
        raise RuntimeError("the caller's transaction fails after the change")
    jobs.tick(NOW)
    assert webhook_receiver.attempts == [] and smtp_server == []


def test_a_muted_event_is_not_emailed(people, smtp_server):
    Preference.objects.create(user=people["rita"], muted=["waiver.submitted"])
    services.create(request_body(submit=True), people["rita"], now=NOW)
    services.create(request_body(submit=True), people["sam"], now=NOW)
    jobs.tick(NOW)
    assert mails_to(smtp_server, "sam@example.com", "submitted for approval")
    assert not mails_to(smtp_server, "rita@example.com", "submitted for approval")
    assert mails_to(smtp_server, "mona@example.com", "waiting for a decision from you")


def test_webhooks_into_the_private_network_are_refused_unless_allowed(people, settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x"):
        with pytest.raises(Invalid) as refused:
            webhooks.register(url, [], people["adam"])
        assert refused.value.problems[0].code == "private_address"
    settings.ALLOW_PRIVATE_WEBHOOKS = True
    assert webhooks.register("http://127.0.0.1:9/x", [], people["adam"]).active


def test_reminders_go_out_at_the_policy_offsets_and_never_twice(people, smtp_server):
    waiver = approved(people)
    jobs.tick(at(START))
    smtp_server.clear()
    for day in (
        END - timedelta(days=31),
        END - timedelta(days=30),
        END - timedelta(days=30),
        END - timedelta(days=29),
        END - timedelta(days=7),
        END - timedelta(days=1),
    ):
        jobs.tick(at(day))  # fmt: skip
    reminders = mails_to(smtp_server, "olga@example.com", "ends soon")
    assert len(reminders) == 3  # 30, 7 and 1 days before
    assert "Days_left: 30" in reminders[0].get_payload()
    assert len(mails_to(smtp_server, "rita@example.com", "ends soon")) == 3
    assert (
        AuditEntry.objects.filter(object_ref=waiver.reference, action="waiver.reminded").count()
        == 3
    )


def test_a_condition_past_its_due_date_is_breached_and_told_to_its_owner_and_control_owner(
    people, smtp_server
):
    waiver = services.create(request_body(submit=True), people["rita"], now=NOW)
    due = START + timedelta(days=10)
    services.decide(
        waiver.reference, people["mona"], "approve", now=NOW,
        conditions=[{"text": "Seat count reported", "owner": "ivan", "due": due.isoformat()}],
    )  # fmt: skip
    jobs.tick(at(START))
    jobs.tick(at(due - timedelta(days=7)))
    assert mails_to(smtp_server, "ivan@example.com", "falls due soon")
    jobs.tick(at(due))
    assert Condition.objects.get().status == "open"  # due today is not late
    jobs.tick(at(due + timedelta(days=1)))
    jobs.tick(at(due + timedelta(days=1)))
    assert Condition.objects.get().status == "breached"
    breached = "a condition that is past its due date"
    assert len(mails_to(smtp_server, "ivan@example.com", breached)) == 1
    assert len(mails_to(smtp_server, "olga@example.com", breached)) == 1
    page = Client()
    page.force_login(people["olga"])
    flagged = page.get(f"/requests/{waiver.reference}/").content.decode()
    assert "Condition breached: Seat count reported" in flagged


def test_a_late_implementation_task_is_told_once_to_whoever_should_do_it(people, smtp_server):
    waiver = services.create(request_body(submit=True), people["rita"], now=NOW)
    services.decide(waiver.reference, people["mona"], "approve", now=NOW)  # tasks due in 2 days
    jobs.tick(NOW + timedelta(days=2))
    assert not mails_to(smtp_server, "ivan@example.com", "task past its due date")
    jobs.tick(NOW + timedelta(days=3))
    jobs.tick(NOW + timedelta(days=4))
    late = mails_to(smtp_server, "ivan@example.com", "task past its due date")
    assert len(late) == 2  # entitlements and billing, each once; rita's notice goes to rita
    assert len(mails_to(smtp_server, "rita@example.com", "task past its due date")) == 1


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(people):
    waiver = approved(people)
    lines = jobs.tick(at(START), dry_run=True)
    assert f"{waiver.reference}: activate" in lines
    assert any(line.startswith("would send email waiver.approved") for line in lines)
    assert services.get(waiver.reference).status == "approved"
    assert not Message.objects.filter(state="sent").exists()


def test_the_sandbox_clock_moves_and_a_production_workspace_refuses(world, settings):
    settings.SANDBOX = False
    with pytest.raises(CommandError, match="production workspace"):
        call_command("clock", "advance", "3")
    settings.SANDBOX = True
    call_command("clock", "set", "2030-01-01")
    assert clock.now().date() == date(2030, 1, 1)
    call_command("clock", "advance", "2")
    assert clock.now().date() == date(2030, 1, 3)
    assert AuditEntry.objects.filter(action="clock.moved").count() == 2
