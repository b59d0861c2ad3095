"""The approver's day in the browser's pages: an inbox that lists and counts only what the
person may decide, the decision form that keeps what was typed, the next request after a
decision, bulk decisions each checked on its own; and formatting for each reader."""

import io
import re

import pytest
from django.contrib.auth.models import User
from pypdf import PdfReader

from waiverdesk.audit.models import AuditEntry
from waiverdesk.directory import services as directory
from waiverdesk.directory.models import Profile
from waiverdesk.notifications.models import Message
from waiverdesk.testing import (
    NOW,
    big_discount_body,
    client_for,
    email_text,
    pseudonym,
    request_body,
)
from waiverdesk.waivers import access, services
from waiverdesk.waivers.models import Waiver
from waiverdesk.waivers.services import separation

REF = re.compile(r"WVR-\d{4}-\d{5}")


def inbox_rows(page) -> list[str]:
    html = page.content.decode()
    if 'id="inbox"' not in html:
        return []
    return list(dict.fromkeys(REF.findall(html.split('id="inbox"')[1].split("</table>")[0])))


def test_a_conflicted_account_owner_sees_the_request_apart_and_it_is_not_counted(world):
    # mark is a sales manager and owns the Acme account: an Acme request is not his to decide.
    acme = services.create(request_body(customer="ACME-001", submit=True), world["rita"], now=NOW)
    globex = services.create(request_body(submit=True), world["rita"], now=NOW)
    mark = client_for("mark")
    page = mark.get("/inbox/")
    html = page.content.decode()
    assert inbox_rows(page) == [globex.reference]
    assert "1 step waiting for your decision" in html
    held = html.split('id="h-held"')[1]
    assert acme.reference in held and "you own this customer&#x27;s account" in held
    assert 'aria-label="1 waiting for your decision"' in html  # the badge counts one
    assert access.decidable_by(world["mark"]).count() == 1
    assert set(inbox_rows(client_for("mona").get("/inbox/"))) == {acme.reference, globex.reference}


@pytest.mark.parametrize("read_first", [True, False], ids=["ids read first", "as subqueries"])
def test_the_inbox_query_agrees_with_the_rule_for_every_person(world, read_first, monkeypatch):
    if not read_first:  # as when a person owns more customers than are read into the query
        monkeypatch.setattr(separation, "_known", lambda ids: ids)
    directory.add_customer("MONA-CO", "Mona's cousin", "EMEA", account_owner="mona")
    # A chain of three: mark's exception, continued by one of rita's, continued by another of
    # rita's (as after a hand-over): mark may decide on neither, however far back.
    chain = [services.create(request_body(submit=True), world[who], now=NOW)
             for who in ("mark", "rita", "rita")]  # fmt: skip
    for earlier, later in zip(chain, chain[1:], strict=False):
        Waiver.objects.filter(pk=later.pk).update(predecessor=earlier, kind="renewal")
    held = {w.reference for w in access.held_back_from(world["mark"])}
    assert {chain[1].reference, chain[2].reference} <= held
    for i, (customer, by) in enumerate([("GLOBEX-002", "rita"), ("MONA-CO", "rita"),
                                        ("ACME-001", "sam"), ("GLOBEX-002", "mark")]):  # fmt: skip
        body = big_discount_body(customer=customer, submit=True) if i % 2 else request_body(
            customer=customer, submit=True)  # fmt: skip
        services.create(body, world[by], now=NOW)
    for person in User.objects.all():
        pending = list(access.pending_for(person))
        by_rule = {w.pk for w in pending if services.may_act(w, person) is None}
        assert {w.pk for w in access.decidable_by(person)} == by_rule, person.username
        assert {w.pk for w in access.held_back_from(person)} == {w.pk for w in pending} - by_rule
    # A loop in the data (a waiver continuing what continues it) ends, and still holds back.
    Waiver.objects.filter(pk=chain[0].pk).update(predecessor=chain[2], kind="renewal")
    assert {chain[1].reference, chain[2].reference} <= {
        w.reference for w in access.held_back_from(world["mark"])}  # fmt: skip


def test_after_a_decision_from_the_inbox_the_next_request_opens(world):
    refs = [services.create(request_body(submit=True), world["rita"], now=NOW).reference
            for _ in range(3)]  # fmt: skip
    mona = client_for("mona")
    opened = mona.get(f"/requests/{refs[0]}/?from=inbox").content.decode()
    # The decision form comes first on the page, before the request's details.
    assert opened.index('id="decision-form"') < opened.index('id="h-summary"')
    answer = mona.post(f"/requests/{refs[0]}/decide", {"decision": "approve", "from": "inbox"})
    assert answer.status_code == 302 and answer["Location"] == f"/requests/{refs[1]}/?from=inbox"
    mona.post(f"/requests/{refs[1]}/decide", {"decision": "approve", "from": "inbox"})
    last = mona.post(f"/requests/{refs[2]}/decide", {"decision": "approve", "from": "inbox"},
                     follow=True)  # fmt: skip
    assert last.request["PATH_INFO"] == "/inbox/"
    assert f"Your approval of {refs[2]} is recorded" in last.content.decode()


def test_the_banner_says_who_the_request_waits_on_now(world):
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    page = client_for("mona").post(f"/requests/{ref}/decide", {"decision": "approve"}, follow=True)
    assert f"Your approval of {ref} is recorded; waiting on Deal desk: dana or dirk." in (
        page.content.decode())  # fmt: skip


def test_a_refused_decision_keeps_everything_that_was_typed(world):
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    dana = client_for("dana")
    page = dana.post(f"/requests/{ref}/decide", {
        "decision": "approve", "comment": "Within guidance, see the memo",
        "checks": ["contract_allows_discount"], "condition_text": "Report quarterly",
        "condition_owner": "olga", "condition_due": "2001-01-01",
        "condition_customer_visible": "1"})  # fmt: skip
    html = page.content.decode()
    assert page.status_code == 422
    assert "Within guidance, see the memo</textarea>" in html
    assert 'value="Report quarterly"' in html and 'value="2001-01-01"' in html
    assert '<option value="olga" selected>' in html
    assert 'value="contract_allows_discount" checked' in html
    assert 'name="condition_customer_visible" value="1" checked' in html
    summary = re.sub(r"<[^>]+>", " ", html.split('id="error-summary"')[1].split("</div>")[0])
    assert "Condition due: the due date" in summary and "conditions[0]" not in summary
    assert not services.get(ref).approvals.filter(user=world["dana"]).exists()


def test_bulk_approval_checks_each_request_on_its_own(world):
    directory.add_customer("MONA-CO", "Mona's cousin", "EMEA", account_owner="mona")
    refs = [services.create(request_body(submit=True), world["rita"], now=NOW).reference
            for _ in range(4)]  # fmt: skip
    conflicted = services.create(request_body(customer="MONA-CO", submit=True), world["rita"],
                                 now=NOW).reference  # fmt: skip
    mona = client_for("mona")
    chosen = {"decision": "approve", "comment": "batch", "selected": [*refs, conflicted]}
    page = mona.post("/requests/decide", chosen, follow=True)
    html = page.content.decode()
    assert f"Approved: {', '.join(refs)}." in html
    assert f"{conflicted} not approved: you own this customer&#x27;s account" in html
    for ref in refs:
        assert services.get(ref).approvals.filter(user=world["mona"], comment="batch").exists()
        assert AuditEntry.objects.filter(object_ref=ref, action="waiver.decided").count() == 1
    assert services.get(conflicted).status == "submitted"
    assert AuditEntry.objects.filter(object_ref=conflicted, action="waiver.decided").count() == 0
    # A request the person may not even see is refused like one that does not exist.
    chosen = {"decision": "approve", "selected": [refs[0]]}
    hidden = client_for("dana").post("/requests/decide", chosen, follow=True)
    assert "not found, or not yours to see" in hidden.content.decode()


def test_money_and_moments_are_written_for_each_reader_in_pages_emails_and_pdfs(world):
    Profile.objects.create(user=world["dana"], locale="de_DE", time_zone="Europe/Berlin")
    Profile.objects.create(user=world["mona"], locale="en_US", time_zone="America/New_York")
    User.objects.filter(username="dana").update(email="dana@example.com")
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    us = client_for("mona").get(f"/requests/{ref}/").content.decode()
    de = client_for("dana").get(f"/requests/{ref}/").content.decode()
    assert "EUR\xa0315,000" in us and "EUR\xa0315.000" in de
    assert "Feb 1, 2027" in us and "01.02.2027" in de
    # The timeline's first entry was at 09:00 UTC (NOW).
    assert re.search(r"4:00\s?AM", us)  # New York in winter: UTC-5
    assert "10:00" in de  # Berlin in winter: UTC+1
    services.decide(ref, world["mona"], "approve", now=NOW)
    (email,) = Message.objects.filter(channel="email", recipient="dana@example.com",
                                      object_ref=ref, event="waiver.step_opened")  # fmt: skip
    text = email_text(email)
    assert "EUR\xa0315.000" in text and "01.02.2027" in text
    assert "Europe/Berlin" in text


def test_the_customer_notice_pdf_is_written_for_its_sender(world):
    Profile.objects.create(user=world["rita"], locale="de_DE", time_zone="Europe/Berlin")
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    pdf = client_for("rita").get(f"/requests/{ref}/notice.pdf", {"cover_note": "Hallo"})
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "1. Februar 2027" in text and "Hallo" in text


@pytest.mark.parametrize("person", ["mona", "dana"])
def test_the_csv_headings_name_the_readers_time_zone(world, person):
    zone = {"mona": "America/New_York", "dana": "Europe/Berlin"}[person]
    Profile.objects.create(user=world[person], time_zone=zone)
    directory.add_user(person, ["auditor"])
    answer = client_for(person).get("/requests/all/", {"export": "csv"})
    heading = b"".join(answer.streaming_content).decode("utf-8-sig").splitlines()[0]
    assert f"Submitted ({zone})" in heading


def test_settings_refuse_what_is_not_a_locale_or_a_zone_and_keep_the_rest(world):
    rita = client_for("rita")
    page = rita.post("/settings/", {"locale": "xx_YY", "time_zone": "Mars/Olympus"})
    html = page.content.decode()
    assert page.status_code == 422
    assert "Format: &#x27;xx_YY&#x27; is not a locale" in html
    assert "Time zone: &#x27;Mars/Olympus&#x27; is not a time zone" in html
    assert not Profile.objects.filter(user=world["rita"]).exists()
    rita.post("/settings/", {"locale": "de-DE", "time_zone": "Asia/Tokyo"})
    profile = Profile.objects.get(user=world["rita"])
    assert (profile.locale, profile.time_zone) == ("de_DE", "Asia/Tokyo")
    assert AuditEntry.objects.filter(
        action="user.settings_changed", object_ref=pseudonym("rita")
    ).exists()
