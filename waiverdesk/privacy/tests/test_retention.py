"""Retention with a fixed clock: the policy's `retention:` section says how long personal
data and records are kept after the last request they concern ends; the worker erases and
purges what is due, unless a legal hold keeps it; the report lists the next 90 days."""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.policy import PolicyError, load_policy
from waiverdesk.directory import people
from waiverdesk.directory.models import Customer
from waiverdesk.privacy import services as privacy
from waiverdesk.testing import NOW, at_once, postgres_only, publish_policy, request_body
from waiverdesk.waivers import attachments, services
from waiverdesk.waivers.models import Attachment, Waiver
from waiverdesk.worker import jobs

RETENTION = "\nretention:\n  personal_data_days: 30\n  records_days: 60\n"


def kept_for_a_while():
    publish_policy(settings.DEFAULT_POLICY_FILE.read_text() + RETENTION)


@pytest.fixture
def mona_left(world):
    """mona decided a request that was then withdrawn, on NOW, and has left the company."""
    kept_for_a_while()
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    stored = attachments.store("plan.txt", b"the customer's plan", "text/plain")
    with transaction.atomic():
        attachments.keep(stored)
        Attachment.objects.create(waiver=Waiver.objects.get(reference=ref), kind="usage_forecast",
                                  filename="plan.txt", content_type="text/plain", size=19,
                                  sha256=stored.sha256, uploaded_by=world["rita"],
                                  uploaded_at=NOW)  # fmt: skip
    services.decide(ref, world["mona"], "request_changes", "Attach the renewal plan", now=NOW)
    services.withdraw(ref, world["rita"], "Renewal signed early", now=NOW)
    people.deactivate("mona", reason="left")
    User.objects.filter(username="mona").update(date_joined=NOW - timedelta(days=400))
    return ref


def erased(name: str) -> bool:
    return not User.objects.filter(username=name).exists()


def test_personal_data_is_erased_when_due_and_records_purged_later(
    mona_left, django_capture_on_commit_callbacks
):
    said = jobs.tick(NOW + timedelta(days=29))
    assert not any("erased" in line for line in said) and not erased("mona")
    said = jobs.tick(NOW + timedelta(days=30))
    assert any(line.endswith(": personal data erased") for line in said), said
    assert erased("mona") and not erased("rita")  # rita is still active
    entry = AuditEntry.objects.get(action="privacy.erased")
    assert entry.actor == "system" and '"why":"retention"' in entry.payload

    waiver = Waiver.objects.get(reference=mona_left)
    assert waiver.justification["benefit"] == "Keeps 50 analysts working"
    path = attachments.path_for(Attachment.objects.get().sha256)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once committed
        said = jobs.tick(NOW + timedelta(days=60))
    assert f"{mona_left}: records purged" in said
    waiver.refresh_from_db()
    gone = f"erased on {(NOW + timedelta(days=60)):%Y-%m-%d}"
    assert waiver.justification["benefit"] == gone and waiver.ended_reason == ""
    assert waiver.approvals.get().comment == gone
    assert waiver.status == "withdrawn" and waiver.reference == mona_left  # the figures stay
    assert not Attachment.objects.exists() and not path.exists()
    assert privacy.due((NOW + timedelta(days=60)).date()) == []  # nothing twice
    assert "globex-002" in waiver.search_text  # still found by its customer
    assert audit.verify().ok


def test_a_contacts_address_that_is_also_a_persons_is_not_erased_as_a_contact(mona_left, world):
    User.objects.filter(username="sam").update(email="buyer@globex.example")
    Customer.objects.filter(external_id="GLOBEX-002").update(contact_email="buyer@globex.example")
    later = NOW + timedelta(days=30)
    contact = next(d for d in privacy.due(later.date()) if d.kind == "contact")
    assert contact.blocked == "the address is also a person's: erase them as a person"
    privacy.apply_retention(later)
    assert User.objects.get(username="sam").is_active  # sam still works here
    assert Customer.objects.get(external_id="GLOBEX-002").contact_email == "buyer@globex.example"


def test_a_legal_hold_keeps_what_is_due_and_its_release_erases_at_the_next_run(mona_left, world):
    hold = privacy.hold("waiver", mona_left, "claim by the customer", "audrey", world["adam"])
    due = privacy.due(NOW.date(), 90)
    assert [(d.kind, d.target, d.on, [h.pk for h in d.held]) for d in due] == [
        ("person", "mona", (NOW + timedelta(days=30)).date(), [hold.pk]),
        ("records", mona_left, (NOW + timedelta(days=60)).date(), [hold.pk]),
    ]
    out = io.StringIO()
    call_command("privacy", "due", stdout=out)
    assert f"KEPT by legal hold #{hold.pk} (audrey: claim by the customer)" in out.getvalue()

    later = NOW + timedelta(days=61)
    assert privacy.apply_retention(later) == []
    assert not erased("mona") and not hasattr(Waiver.objects.get(reference=mona_left), "purge")
    privacy.release(hold.pk, world["audrey"], now=later)
    done = dict(privacy.apply_retention(later + timedelta(minutes=1)))
    assert done[mona_left] == "records purged" and erased("mona")


def test_a_hold_on_the_person_or_the_customer_keeps_them_too(mona_left, world):
    by_person = privacy.hold("person", "mona", "investigation", "audrey", world["adam"])
    later = NOW + timedelta(days=90)  # her data and the request she decided on are both due
    assert privacy.apply_retention(later) == []
    assert {(d.kind, d.target): d.held for d in privacy.due(later.date())} == {
        ("person", "mona"): [by_person],
        ("records", mona_left): [by_person],
    }
    privacy.release(by_person.pk, world["adam"])
    privacy.hold("customer", "GLOBEX-002", "audit 2027", "audrey", world["adam"])
    assert privacy.apply_retention(NOW + timedelta(days=90)) == []
    assert not erased("mona")


def test_the_dry_run_and_the_report_change_nothing(mona_left):
    assert privacy.apply_retention(NOW + timedelta(days=90), dry_run=True) == [
        ("mona", "due: personal data erased"),
        (mona_left, "due: records purged"),
    ]
    out = io.StringIO()
    call_command("privacy", "due", "--days", "10", stdout=out)
    assert out.getvalue().strip() == "0 due in the next 10 days"
    assert not erased("mona")


def test_without_a_retention_section_nothing_is_erased(world):
    services.create(request_body(submit=True), world["rita"], now=NOW)
    people.deactivate("mona")
    assert privacy.due(NOW.date(), 10_000) == []
    assert privacy.apply_retention(NOW + timedelta(days=10_000)) == []


def test_a_retention_that_makes_no_sense_is_refused_by_the_policy_check():
    text = settings.DEFAULT_POLICY_FILE.read_text()
    with pytest.raises(PolicyError) as refused:
        load_policy(text + "\nretention:\n  personal_data_days: 0\n  records_dayz: 60\n")
    said = str(refused.value)
    assert "retention.personal_data_days" in said and "retention.records_dayz" in said


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_erase_once(committed_world):
    kept_for_a_while()
    rita, mona = (User.objects.get(username=n) for n in ("rita", "mona"))
    ref = services.create(request_body(submit=True), rita, now=NOW).reference
    services.decide(ref, mona, "reject", "Not this quarter", now=NOW)
    people.deactivate("mona")
    User.objects.filter(username="mona").update(date_joined=NOW - timedelta(days=400))
    results = at_once(2, lambda i: privacy.apply_retention(NOW + timedelta(days=30)))
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(len(r) for r in results) == [0, 1]
    assert AuditEntry.objects.filter(action="privacy.erased").count() == 1
    assert audit.verify().ok
