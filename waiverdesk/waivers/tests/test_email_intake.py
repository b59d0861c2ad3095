"""Requests by email: a draft and an answer, or an answer listing the problems."""

import mailbox
from email.message import EmailMessage

from django.core.management import call_command

from waiverdesk.notifications import services as notify
from waiverdesk.testing import NOW
from waiverdesk.waivers import email_intake
from waiverdesk.waivers.models import Waiver

WELL_FORMED = """\
Hello, please set this up:

type: temporary_access
customer: GLOBEX-002
products: AN-EDGE
license_type: subscription
region: AMER
start: 2027-02-01
end: 2027-03-15
scope.seats: 50
financials.currency: EUR
financials.list_value: 12000
financials.concession: 3000
justification.benefit: Keeps 50 analysts working
justification.customer_impact: No outage
justification.why_not_standard: The renewal is late
outcomes.metric: analysts working
outcomes.target: 50
control_owner: olga

Thanks, Rita
"""


def email(sender: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = f"Rita <{sender}>", "waivers@example.com"
    message["Subject"] = "Temporary access for Globex"
    message.set_content(body)
    return message.as_bytes()


def test_a_well_formed_email_becomes_a_draft_and_the_sender_gets_its_reference(world, smtp_server):
    world["rita"].email = "rita@example.com"
    world["rita"].save()
    answer = email_intake.receive(email("RITA@example.com", WELL_FORMED), NOW)
    waiver = Waiver.objects.get()
    assert (waiver.status, waiver.requester.username, waiver.scope["seats"]) == (
        "draft",
        "rita",
        50,
    )
    assert answer.reference == waiver.reference
    notify.deliver(NOW)
    (reply,) = smtp_server
    assert reply["To"] == "rita@example.com"
    assert reply["Subject"] == "Re: Temporary access for Globex"
    assert waiver.reference in reply.get_payload()


def test_a_malformed_email_is_answered_with_its_problems_and_nothing_is_stored(world, smtp_server):
    world["rita"].email = "rita@example.com"
    world["rita"].save()
    broken = WELL_FORMED.replace("end: 2027-03-15", "end: 2027-01-15").replace(
        "customer: GLOBEX-002", "customer: NOBODY-9"
    )
    answer = email_intake.receive(email("rita@example.com", broken), NOW)
    assert not Waiver.objects.exists()
    assert "end: end must not be before start" in answer.body
    assert "customer: no customer with external id 'NOBODY-9'" in answer.body
    notify.deliver(NOW)
    assert "Nothing was created" in smtp_server[0].get_payload()


def test_an_unknown_sender_creates_nothing(world):
    answer = email_intake.receive(email("stranger@example.com", WELL_FORMED), NOW)
    assert not Waiver.objects.exists()
    assert "do not know this address" in answer.body


def test_the_command_reads_the_new_messages_of_a_maildir_once(world, tmp_path, capsys):
    world["rita"].email = "rita@example.com"
    world["rita"].save()
    box = mailbox.Maildir(tmp_path / "inbox")
    box.add(email("rita@example.com", WELL_FORMED))
    call_command("intake-email", "--maildir", str(tmp_path / "inbox"))
    call_command("intake-email", "--maildir", str(tmp_path / "inbox"))
    assert Waiver.objects.count() == 1
    assert "saved as draft" in capsys.readouterr().out
