"""The customer notice: plain language, exact dates, limits, conditions, the end; as text,
as a PDF (read back with a PDF text extractor), and as an email to the customer's contact."""

import io

import pytest
from django.test import Client
from pypdf import PdfReader

from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory import services as directory
from waiverdesk.directory.readers import site_default
from waiverdesk.notifications import services as notify
from waiverdesk.testing import NOW, request_body
from waiverdesk.waivers import notice, services


@pytest.fixture
def approved(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(
        ref, world["mona"], "approve", now=NOW,
        conditions=[
            {"text": "Report seat use monthly", "owner": "olga", "due": "2027-02-28",
             "customer_visible": True},
            {"text": "Check the margin with finance", "owner": "olga", "due": "2027-02-15"},
        ],
    )  # fmt: skip
    return services.get(ref)


def test_the_notice_says_what_is_allowed_when_and_on_what_terms(approved):
    title, paragraphs = notice.text(approved)
    body = "\n".join(paragraphs)
    assert title == f"Exception {approved.reference}: Temporary access during a renewal transition"
    assert "It allows access for 50 seats to the listed products." in body
    assert "from February 1, 2027 to March 15, 2027 inclusive" in body
    assert "Analytics Edge (AN-EDGE)" in body
    assert "Report seat use monthly (by February 28, 2027)" in body
    # Only what the customer is to be told: internal conditions and approvals stay inside.
    assert "margin" not in body and "mona" not in body and "olga" not in body
    assert "When it ends, access stops unless the renewal has been signed." in body


def pdf_text(waiver, sender, cover_note="") -> str:
    letter = notice.letter(waiver, sender, site_default(), NOW.date(), cover_note)
    return PdfReader(io.BytesIO(notice.pdf(letter))).pages[0].extract_text()


def text_of(mail) -> str:
    """The text of an email (its first text/plain part)."""
    part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def test_the_pdf_reads_back_with_the_same_terms(approved, world):
    text = pdf_text(approved, world["rita"])
    for part in (approved.reference, "February 1, 2027", "March 15, 2027", "50 seats"):
        assert part in text


def test_sending_the_notice_emails_the_contact_and_completes_the_task(approved, world, smtp_server):
    with pytest.raises(Invalid, match="no contact address"):
        notice.send(approved.reference, world["rita"], NOW)
    directory.update_customer("GLOBEX-002", {"contact_email": "licensing@globex.example"})
    with pytest.raises(Denied):
        notice.send(approved.reference, world["sam"], NOW)
    assert notice.send(approved.reference, world["rita"], NOW) == "licensing@globex.example"
    assert approved.tasks.get(name="notify_customer").status == "done"
    notify.deliver(NOW)
    (mail,) = [m for m in smtp_server if m["To"] == "licensing@globex.example"]
    assert "It applies from February 1, 2027 to March 15, 2027" in text_of(mail)


def test_the_notice_pages_are_for_approved_exceptions_that_the_user_may_see(approved, world):
    rita, sam = Client(), Client()
    rita.force_login(world["rita"])
    sam.force_login(world["sam"])
    assert (
        "It allows access for 50 seats"
        in rita.get(f"/requests/{approved.reference}/notice/").content.decode()
    )
    pdf = rita.get(f"/requests/{approved.reference}/notice.pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert sam.get(f"/requests/{approved.reference}/notice/").status_code == 404
    draft = services.create(request_body(), world["rita"], now=NOW)
    assert rita.get(f"/requests/{draft.reference}/notice/").status_code == 404


def test_the_notice_pdf_and_email_keep_internal_conditions_inside(approved, world, smtp_server):
    text = pdf_text(approved, world["rita"])
    assert "Report seat use monthly" in text and "margin" not in text
    directory.update_customer("GLOBEX-002", {"contact_email": "licensing@globex.example"})
    notice.send(approved.reference, world["rita"], NOW)
    notify.deliver(NOW)
    (mail,) = [m for m in smtp_server if m["To"] == "licensing@globex.example"]
    assert "Report seat use monthly" in text_of(mail) and "margin" not in text_of(mail)


def test_every_door_can_mark_a_condition_for_the_customer(world, tmp_path):
    from django.core.management import call_command

    from waiverdesk.api import services as tokens
    from waiverdesk.waivers.models import Condition

    refs = [services.create(request_body(submit=True), world["rita"], now=NOW).reference
            for _ in range(3)]  # fmt: skip
    web = Client()
    web.force_login(world["mona"])
    web.post(f"/requests/{refs[0]}/decide", {"decision": "approve", "condition_text": "Web told",
             "condition_owner": "olga", "condition_due": "2027-03-01",
             "condition_customer_visible": "1"})  # fmt: skip
    raw = tokens.create_token(world["mona"], "t", ["read", "decide"])[1]
    answer = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
        f"/api/v1/waivers/{refs[1]}/decisions",
        {"decision": "approve", "conditions": [
            {"text": "API told", "owner": "olga", "due": "2027-03-01", "customer_visible": True}]},
        content_type="application/json",
    )  # fmt: skip
    assert answer.status_code == 201, answer.content
    assert answer.json()["conditions"][0]["customer_visible"] is True
    call_command("waiver", "approve", refs[2], "--as", "mona",
                 "--condition", "CLI told;olga;2027-03-01;customer")  # fmt: skip
    told = dict(Condition.objects.values_list("text", "customer_visible"))
    assert told == {"Web told": True, "API told": True, "CLI told": True}


def test_a_condition_marked_for_the_customer_in_a_strange_way_is_refused(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    odd = {"text": "x", "owner": "olga", "due": "2027-03-01", "customer_visible": "maybe"}
    with pytest.raises(Invalid) as refused:
        services.decide(ref, world["mona"], "approve", now=NOW, conditions=[odd])
    assert refused.value.problems[0].field == "conditions[0].customer_visible"
