"""Requests by email: a draft and an answer, or an answer listing the problems; and no
message can stop intake, be forged into a draft, be handled twice, or start a loop."""

import base64
import mailbox
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command

from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, DnsServer
from waiverdesk.waivers import email_intake
from waiverdesk.waivers import email_reading as reading
from waiverdesk.waivers.models import InboundEmail, Waiver

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
TRUSTED = "mx.example.com"  # the receiving server that vouches for senders in these tests


@pytest.fixture(autouse=True)
def _trusted(trusted_mail_server):
    pass


@pytest.fixture
def rita(world):
    world["rita"].email = "rita@example.com"
    world["rita"].save()
    return world["rita"]


def email(sender: str, body: str, verified_by: str | None = TRUSTED, **headers) -> bytes:
    """A message from `sender`; its domain vouched for by `verified_by`'s
    Authentication-Results (as a receiving server adds it), unless None."""
    message = EmailMessage()
    if verified_by:
        domain = sender.rsplit("@", 1)[1].lower()
        message["Authentication-Results"] = (
            f"{verified_by}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
        )
    message["From"], message["To"] = f"Rita <{sender}>", "waivers@example.com"
    message["Subject"] = "Temporary access for Globex"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def test_a_well_formed_email_becomes_a_draft_and_the_sender_gets_its_reference(rita, smtp_server):
    original = email("RITA@example.com", WELL_FORMED, Message_ID="<m1@mail.example.com>")
    answer = email_intake.receive(original, NOW)
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
    # An answer that no auto-responder answers back, threaded under the request.
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<m1@mail.example.com>"
    assert reply["References"] == "<m1@mail.example.com>"


def test_a_malformed_email_is_answered_with_its_problems_and_nothing_is_stored(rita, smtp_server):
    broken = WELL_FORMED.replace("end: 2027-03-15", "end: 2027-01-15").replace(
        "customer: GLOBEX-002", "customer: NOBODY-9"
    )
    answer = email_intake.receive(email("rita@example.com", broken), NOW)
    assert not Waiver.objects.exists()
    assert "End (end): end must not be before start" in answer.body
    assert "Customer (customer): no customer with external id 'NOBODY-9'" in answer.body
    notify.deliver(NOW)
    assert "Nothing was created" in smtp_server[0].get_payload()


def test_an_unknown_sender_creates_nothing(world):
    answer = email_intake.receive(email("stranger@example.com", WELL_FORMED), NOW)
    assert not Waiver.objects.exists()
    assert "do not know this address" in answer.body


def test_a_reply_subject_is_not_stacked(rita):
    message = email("rita@example.com", WELL_FORMED, References="<a@x> <b@x>",
                    Message_ID="<c@x>")  # fmt: skip
    message = message.replace(b"Subject: Temporary", b"Subject: RE: Temporary")
    answer = email_intake.receive(message, NOW)
    assert answer.subject == "RE: Temporary access for Globex"
    assert answer.headers["References"] == "<a@x> <b@x> <c@x>"


def test_one_message_id_is_handled_once(rita):
    message = email("rita@example.com", WELL_FORMED, Message_ID="<once@mail.example.com>")
    assert email_intake.receive(message, NOW).reference
    again = email_intake.receive(message, NOW)
    assert again.quarantined == "it was handled already" and not again.answered
    assert Waiver.objects.count() == 1
    assert Message.objects.filter(channel="email").count() == 1  # one answer


# -- who sent it ------------------------------------------------------------------------------


@pytest.fixture
def signing(settings):
    """A DKIM key of example.com, published in a real DNS server the intake asks."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server = DnsServer()
    server.records["test._domainkey.example.com"] = server.records[
        "test._domainkey.evil.example"
    ] = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()
    settings.DNS_SERVER, settings.EMAIL_TRUSTED_AUTHSERV = server.address, set()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    def sign(message: bytes, domain: str = "example.com") -> bytes:
        header = dkim.sign(message, b"test", domain.encode(), pem,
                           include_headers=[b"From", b"To", b"Subject"])  # fmt: skip
        return header + message

    yield sign
    server.stop()


def test_a_dkim_signed_message_from_its_domain_becomes_a_draft(rita, signing):
    answer = email_intake.receive(signing(email("rita@example.com", WELL_FORMED, None)), NOW)
    assert answer.reference and Waiver.objects.count() == 1


def forge_from(sign, message: bytes) -> bytes:
    """Signed by the attacker's own domain, then the From changed to Rita's."""
    evil = sign(message.replace(b"rita@example.com", b"rita@evil.example"), "evil.example")
    return evil.replace(b"From: Rita <rita@evil.example>", b"From: Rita <rita@example.com>")


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda sign, m: m, id="unsigned"),
        pytest.param(lambda sign, m: sign(m).replace(b"Keeps 50", b"Keeps 90"), id="altered"),
        pytest.param(lambda sign, m: forge_from(sign, m), id="forged-from"),
        pytest.param(lambda sign, m: sign(m, "evil.example"), id="signed-by-another-domain"),
    ],
)  # fmt: skip
def test_a_message_whose_sender_is_not_verified_is_quarantined_and_not_answered(
    rita, signing, forge
):
    message = forge(signing, email("rita@example.com", WELL_FORMED, None))
    answer = email_intake.receive(message, NOW)
    assert not Waiver.objects.exists()
    assert "could not be verified" in answer.quarantined
    assert not answer.answered and not Message.objects.exists()  # no mail to a forged address
    assert InboundEmail.objects.get().outcome == "quarantined"


@pytest.mark.parametrize(
    "results",
    [
        pytest.param(
            "mx.attacker.example; dmarc=pass header.from=example.com", id="untrusted-server"
        ),
        pytest.param(f"{TRUSTED}; dkim=pass header.d=attacker.example", id="another-domain"),
        pytest.param(f"{TRUSTED}; dmarc=fail header.from=example.com", id="failed"),
        pytest.param(f"{TRUSTED}; dmarc=pass header.from=example.com (((", id="unparseable"),
    ],
)
def test_authentication_results_count_only_from_the_trusted_server_and_for_the_from_domain(
    rita, results
):
    message = email("rita@example.com", WELL_FORMED, None)
    answer = email_intake.receive(f"Authentication-Results: {results}\n".encode() + message, NOW)
    assert "could not be verified" in answer.quarantined and not Waiver.objects.exists()


def test_only_the_topmost_result_of_the_trusted_server_counts(rita):
    # The receiving server's verdict is on top; a "pass" forged below it by the sender is not read.
    message = email("rita@example.com", WELL_FORMED)  # carries a trusted pass...
    on_top = f"Authentication-Results: {TRUSTED}; dmarc=fail header.from=example.com\n".encode()
    assert "could not be verified" in email_intake.receive(on_top + message, NOW).quarantined


# -- no loops ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"Auto_Submitted": "auto-generated; owner-email=x@example.com"},
        {"Precedence": "bulk"},
        {"Precedence": "list"},
        {"List_Id": "<sales.example.com>"},
        {"Return_Path": "<>"},
    ],
)
def test_an_automatic_message_is_never_answered(rita, headers):
    answer = email_intake.receive(email("rita@example.com", "out of office", **headers), NOW)
    assert answer.quarantined and not answer.answered
    assert not Message.objects.exists()


def test_a_message_from_waiverdesk_itself_is_never_answered(world, settings):
    settings.DEFAULT_FROM_EMAIL = "Waivers <waivers@example.com>"
    answer = email_intake.receive(email("waivers@example.com", "Your request is saved"), NOW)
    assert "own address" in answer.quarantined and not Message.objects.exists()


def test_an_auto_responder_and_intake_do_not_loop(rita, smtp_server):
    """Rita's out-of-office answers intake's answer; intake does not answer that."""
    email_intake.receive(email("rita@example.com", "no fields here"), NOW)
    notify.deliver(NOW)
    (answer,) = smtp_server
    out_of_office = EmailMessage()
    out_of_office["Authentication-Results"] = f"{TRUSTED}; dmarc=pass header.from=example.com"
    out_of_office["From"], out_of_office["To"] = "rita@example.com", answer["From"]
    out_of_office["Subject"] = f"Out of office: {answer['Subject']}"
    out_of_office["Auto-Submitted"] = "auto-replied"
    out_of_office.set_content("I am away until Monday.")
    email_intake.receive(out_of_office.as_bytes(), NOW)
    notify.deliver(NOW)
    assert len(smtp_server) == 1


# -- nothing stops the queue ------------------------------------------------------------------


def poison_messages() -> dict[str, bytes]:
    unknown_charset = email("rita@example.com", WELL_FORMED).replace(
        b'charset="utf-8"', b'charset="x-unheard-of"'
    )
    broken_mime = (
        f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=example.com\n"
        "From: rita@example.com\nSubject: broken\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="never-closed"\n\n'
        "--never-closed\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n@@@not base64@@@\n"
    ).encode()
    return {
        "unknown charset": unknown_charset,
        "NUL": email("rita@example.com", WELL_FORMED.replace("No outage", "No\x00outage")),
        "infinity": email(
            "rita@example.com", WELL_FORMED.replace("list_value: 12000", "list_value: Infinity")
        ),
        "huge": email("rita@example.com", WELL_FORMED + "x" * (20 * 2**20)),
        "broken MIME": broken_mime,
        "garbage": b"\xff\xfe\x00\x00garbage\r\n\r\n\x00\x01",
        "unsigned": email("rita@example.com", WELL_FORMED, None),
    }


def test_a_maildir_with_poison_among_good_messages_makes_every_good_one_a_draft(
    rita, tmp_path, capsys
):
    box = mailbox.Maildir(tmp_path / "inbox")
    bad = poison_messages()
    for name, raw in bad.items():
        box.add(raw)
        box.add(email("rita@example.com", WELL_FORMED.replace("Keeps 50", f"Good after {name}:")))

    call_command("intake-email", "--maildir", str(tmp_path / "inbox"))  # does not raise

    benefits = sorted(w.justification["benefit"] for w in Waiver.objects.all())
    assert benefits == sorted(f"Good after {name}: analysts working" for name in bad)
    quarantine = box.get_folder("Quarantine")
    assert len(quarantine) == len(bad)
    assert all(m["X-Waiverdesk-Quarantined"] for m in quarantine if len(m.as_bytes()) < 2**20)
    assert len(box) == len(bad)  # the good ones, filed as read
    assert all("S" in m.get_flags() for m in box)
    reasons = InboundEmail.objects.filter(outcome="quarantined").values_list("reason", flat=True)
    assert len(reasons) == len(bad)

    call_command("intake-email", "--maildir", str(tmp_path / "inbox"))  # nothing new to read
    assert Waiver.objects.count() == len(bad)
    assert "saved as draft" in capsys.readouterr().out


def test_a_message_the_sender_can_fix_is_answered_with_the_reason(rita):
    bad = poison_messages()
    charset = email_intake.receive(bad["unknown charset"], NOW)
    assert "character set we cannot read (x-unheard-of)" in charset.body and charset.answered
    infinity = email_intake.receive(bad["infinity"], NOW)
    assert infinity.answered and "Nothing was created" in infinity.body
    huge = email_intake.receive(bad["huge"], NOW)
    assert "more than the" in huge.quarantined and not huge.answered


# -- mail as clients send it -------------------------------------------------------------

MAIL = Path(__file__).parent / "mail"
# Each message of the corpus (mail/*.eml, in the shapes Outlook, Gmail, Apple Mail and
# CRMs write) and what it must become: the draft's fields, or the answer's words.
CORPUS = {
    "outlook_alternative_qp.eml": {"seats": 50, "list_value": 12000, "concession": 3000},
    "gmail_reply_quoted_base64.eml": {"seats": 60, "customer": "GLOBEX-002"},
    "apple_mail_flowed.eml": {
        "benefit": "Keeps 50 analysts working through the renewal, which the customer's "
        "procurement team has delayed by six weeks, and protects the expansion we discussed."
    },
    "html_only_crm.eml": {"benefit": "Keeps 50 analysts working & billing",
                          "customer_impact": "No outage – none at all"},  # fmt: skip
    "rfc2047_utf8_8bit.eml": {"benefit": "Keeps 50 analysts at Müller & Söhne working"},
    "latin1_qp.eml": {"customer_impact": "Aucune interruption pour l'équipe de Générale"},
    "windows1252_8bit.eml": {"why_not_standard": "The customer’s “renewal” costs €12k and is late"},
    "shift_jis_base64.eml": {"benefit": "分析チームの50人が作業を続けられる"},
    "unknown_charset.eml": "character set we cannot read (x-mac-klingon)",
    "attachment_named_by_field.eml": {"type": "seat_overage",
                                      "files": {"usage_forecast": "Q1 numbers.pdf"}},  # fmt: skip
    "attachment_named_by_filename.eml": {"files": {"usage_forecast": "Usage forecast 2027.csv"}},
    "gmail_forwarded.eml": {"seats": 50, "control_owner": "olga"},
    "spaced_names_and_numbers.eml": {"seats": 50, "list_value": 12000, "concession": 3000,
                                     "license_type": "subscription"},  # fmt: skip
    "german_number_format.eml": {"requester": "sam", "list_value": 12000, "concession": 2500.5},
    "problems_answered.eml": "Customer (customer): no customer with external id 'NOBODY-999'",
    "apple_inline_pdf.eml": {"type": "volume_discount", "discount_pct": 20,
                             "files": {"business_impact_analysis": "business_impact_analysis.pdf"}},
    "refused_attachment.eml": "Usage forecast (evidence.usage_forecast): allowed types",
}  # fmt: skip


def drafted(waiver) -> dict:
    return {
        "type": waiver.type,
        "customer": waiver.customer.external_id,
        "requester": waiver.requester.username,
        "license_type": waiver.license_type,
        "control_owner": waiver.control_owner.username,
        **{k: v for k, v in waiver.scope.items() if k != "features"},
        **{k: v for k, v in waiver.financials.items() if k != "currency"},
        **waiver.justification,
        "files": {a.kind: a.filename for a in waiver.attachments.all()},
    }


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_mail_as_clients_send_it_becomes_the_draft_it_says(rita, world, name):
    from waiverdesk.directory import services as directory

    world["sam"].email = "sam@example.com"
    world["sam"].save()
    directory.set_reading(world["sam"], "de_DE", "")
    assert len(CORPUS) >= 15
    answer = email_intake.receive((MAIL / name).read_bytes(), NOW)
    expected = CORPUS[name]
    if isinstance(expected, str):
        assert expected in answer.body and answer.answered
        assert not Waiver.objects.exists()
        return
    assert answer.reference, answer.body
    found = drafted(Waiver.objects.get(reference=answer.reference))
    assert {k: found.get(k) for k in expected} == expected
    if expected.get("files"):
        for filename in expected["files"].values():
            assert filename in answer.body  # the answer says what was kept


def test_text_quoted_and_flowed_is_read_as_the_sender_meant_it():
    assert reading.unflow("a long \nline\n> quoted \n> too\n-- \nsig") == (
        "a long line\n> quoted too\n-- \nsig"
    )
    assert reading.unflow("one\u0020\ntwo", delsp=True) == "onetwo"
    assert reading.own_words("type: x\n\nOn Mon, 1 Dec 2026, Olga wrote:\n> type: y") == "type: x\n"
    outlook = "type: x\nFrom: Olga <o@example.com>\nSent: Monday\nTo: Rita\n\ntype: y"
    assert reading.own_words(outlook) == "type: x"
    assert reading.number("12,000") == "12000" and reading.number("12 000") == "12000"
    assert reading.number("12.000,5", "de_DE") == "12000.5" and reading.number("1,5") == "1,5"
    assert reading.field_name("Financials . List value ") == "financials.list_value"
    assert reading.field_name("Hello there, how are you doing today") is None
