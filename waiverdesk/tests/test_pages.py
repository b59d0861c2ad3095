"""The web pages: who sees what (every page × every role), and what each page lets them do.

rita requested the waiver (on GLOBEX-002, low risk: one sales manager approves it); sam is
another requester; mona is the sales manager its route needs; dana approves at a tier this
route does not reach; olga is its control owner; audrey audits; adam is an admin; charlie
has no role.
"""

import re

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from waiverdesk.api.models import ApiToken
from waiverdesk.audit.models import AuditEntry
from waiverdesk.notifications.models import Preference
from waiverdesk.testing import big_discount_body, client_for, publish_policy, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Approval, Attachment, Waiver

PEOPLE = ["rita", "sam", "mona", "dana", "olga", "audrey", "adam", "charlie", "anonymous"]
OVERSIGHT = {"mona", "dana", "olga", "audrey", "adam"}
SEES_WAIVER = {"rita", "mona", "olga", "audrey", "adam"}


@pytest.fixture
def waiver(world):
    return services.create(request_body(submit=True), world["rita"])


def big_discount_form(**changes) -> dict:
    """The web form of big_discount_body(), without its evidence."""
    body = big_discount_body()
    return {
        "customer": body["customer"],
        "products": body["products"],
        "license_type": "subscription",
        "region": "EMEA",
        "start": body["start"],
        "end": body["end"],
        "control_owner": "olga",
        "outcomes.metric": "seats deployed",
        "outcomes.target": "1200",
        **{f"scope.{k}": str(v) for k, v in body["scope"].items()},
        **{f"financials.{k}": str(v) for k, v in body["financials"].items()},
        **{f"justification.{k}": v for k, v in body["justification"].items()},
        **changes,
    }


def expected(page: str, who: str) -> int:
    if who == "anonymous":
        return 302  # to the sign-in page
    if page == "waiver":
        return 200 if who in SEES_WAIVER else 404
    if page == "dashboard":
        return 200 if who in OVERSIGHT else 403
    if page == "billing":
        return 200 if who in ("audrey", "adam") else 403
    if page == "metrics":
        return 200 if who in OVERSIGHT else 403
    if page == "policy replay":
        return 200 if who == "adam" else 403
    if page == "governance":
        return 200 if who in ("olga", "audrey", "adam") else 403
    if page == "privacy":
        return 200 if who in ("audrey", "adam") else 403
    if page in ("people", "a person", "customers", "a customer", "products", "webhooks", "rates"):
        return 200 if who == "adam" else 403
    return 200


PAGES = {
    "my requests": "/requests/",
    "new request": "/requests/new/",
    "request form": "/requests/new/temporary_access/",
    "waiver": "/requests/{ref}/",
    "inbox": "/inbox/",
    "dashboard": "/dashboard/",
    "policy": "/policy/",
    "policy versions": "/policy/versions/",
    "policy diff": "/policy/diff/1/2/",
    "tokens": "/tokens/",
    "implementation": "/implementation/",
    "email preferences": "/preferences/",
    "billing": "/billing/",
    "governance": "/governance/",
    "metrics": "/metrics/",
    "policy replay": "/policy/replay/",
    "people": "/people/",
    "a person": "/people/olga/",
    "customers": "/manage/customers/",
    "a customer": "/manage/customers/ACME-001/",
    "products": "/manage/products/",
    "webhooks": "/manage/webhooks/",
    "rates": "/manage/rates/",
    "privacy": "/manage/privacy/",
    "delegations": "/settings/delegations/",
}


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("page", PAGES)
def test_who_sees_each_page(waiver, page, who):
    publish_policy(
        settings.DEFAULT_POLICY_FILE.read_text().replace("sla_hours: 24", "sla_hours: 12"),
        note="a faster manager tier",
    )
    response = client_for(who).get(PAGES[page].format(ref=waiver.reference))
    assert response.status_code == expected(page, who)
    if who == "anonymous":
        assert response["Location"].startswith("/sign-in/")


def test_a_waiver_on_nobodys_route_is_hidden_like_one_that_does_not_exist(waiver):
    sam = client_for("sam")
    assert sam.get(f"/requests/{waiver.reference}/").status_code == 404
    assert sam.get("/requests/WVR-2099-99999/").status_code == 404


def test_a_requester_submits_from_the_form_and_lands_on_the_waiver_page(world):
    rita = client_for("rita")
    form = {
        "customer": "GLOBEX-002",
        "products": ["AN-EDGE"],
        "license_type": "subscription",
        "region": "AMER",
        "start": "2027-02-01",
        "end": "2027-03-15",
        "scope.seats": "50",
        "financials.currency": "EUR",
        "financials.list_value": "12000",
        "financials.concession": "3000",
        "justification.benefit": "Keeps 50 analysts working",
        "justification.customer_impact": "no outage",
        "justification.why_not_standard": "renewal late",
        "outcomes.metric": "analysts working",
        "outcomes.target": "50",
        "control_owner": "olga",
        "submit": "1",
    }
    response = rita.post("/requests/new/temporary_access/", form, follow=True)
    waiver = Waiver.objects.get()
    assert response.redirect_chain[-1][0] == f"/requests/{waiver.reference}/"
    assert waiver.status == "submitted"
    assert waiver.scope == {"seats": 50, "features": []}
    assert waiver.financials["concession"] == 3000
    assert "submitted for approval" in response.content.decode()


def test_bad_input_is_shown_at_each_field_and_nothing_is_stored(world):
    rita = client_for("rita")
    entries = AuditEntry.objects.count()
    response = rita.post(
        "/requests/new/temporary_access/",
        {"customer": "NOBODY-1", "start": "2027-03-01", "end": "2027-02-01", "submit": "1"},
    )
    page = response.content.decode()
    assert response.status_code == 422
    assert re.search(r'id="f-end-error">end must not be before start', page)
    assert re.search(r'id="f-customer-error">[^<]*NOBODY-1', page)
    assert re.search(r'id="f-products-error">', page)
    assert 'value="2027-03-01"' in page  # what was typed is kept
    assert Waiver.objects.count() == 0
    assert AuditEntry.objects.count() == entries


def test_evidence_sent_with_the_form_is_stored_with_the_request(world):
    form = big_discount_form(submit="1")
    rita = client_for("rita")
    missing = rita.post("/requests/new/volume_discount/", form)
    assert missing.status_code == 422
    assert 'id="f-evidence-business-impact-analysis-error"' in missing.content.decode()
    assert Waiver.objects.count() == 0

    with open(__file__, "rb") as f:
        form["evidence.business_impact_analysis"] = SimpleUploadedFile(
            "analysis.txt", f.read(), content_type="text/plain"
        )
        rita.post("/requests/new/volume_discount/", form)
    waiver = Waiver.objects.get()
    assert waiver.status == "submitted"
    assert list(Attachment.objects.values_list("kind", "filename")) == [
        ("business_impact_analysis", "analysis.txt")
    ]


def test_a_draft_is_completed_on_its_edit_form_and_submitted_in_one_step(world):
    draft = services.create(big_discount_body(evidence={}), world["rita"])
    rita = client_for("rita")
    edit = f"/requests/{draft.reference}/edit/volume_discount/"
    page = rita.get(edit).content.decode()
    assert 'value="1500"' in page  # the stored answers fill the form
    form = big_discount_form(**{"scope.discount_pct": "30", "submit": "1"})
    assert rita.post(edit, form).status_code == 422  # the evidence is still missing
    draft.refresh_from_db()
    assert (draft.status, draft.scope["discount_pct"]) == ("draft", 35)  # nothing changed
    form["evidence.business_impact_analysis"] = SimpleUploadedFile(
        "bia.csv", b"year,revenue\n2027,1.2M\n", content_type="text/csv"
    )
    rita.post(edit, form)
    draft.refresh_from_db()
    assert (draft.status, draft.scope["discount_pct"]) == ("submitted", 30)
    assert draft.attachments.get().filename == "bia.csv"


def test_the_preview_shows_the_route_and_risk_without_saving(world):
    response = client_for("rita").post("/requests/new/volume_discount/preview", big_discount_form())
    page = response.content.decode()
    assert response.status_code == 200
    for tier in ("manager", "deal_desk", "finance", "legal", "executive"):
        assert f"<strong>{tier}</strong>" in page
    assert "risk-critical" in page
    assert "business_impact_analysis" in page  # not yet eligible: the evidence is missing
    assert Waiver.objects.count() == 0


def test_an_approver_decides_from_the_waiver_page(waiver):
    mona = client_for("mona")
    page = mona.get(f"/requests/{waiver.reference}/").content.decode()
    assert 'id="decision-form"' in page
    mona.post(f"/requests/{waiver.reference}/decide", {"decision": "approve", "comment": "fine"})
    waiver.refresh_from_db()
    assert waiver.status == "approved"


def test_a_self_approval_is_not_offered_and_is_refused_when_forced(world):
    waiver = services.create(request_body(submit=True), world["mark"])  # mark manages sales too
    mark = client_for("mark")
    page = mark.get(f"/requests/{waiver.reference}/").content.decode()
    assert 'id="decision-form"' not in page
    assert "you requested this waiver" in page
    response = mark.post(
        f"/requests/{waiver.reference}/decide", {"decision": "approve"}, follow=True
    )
    assert "you requested this waiver" in response.content.decode()
    assert not Approval.objects.exists()
    assert AuditEntry.objects.filter(action="waiver.refused", object_ref=waiver.reference).exists()


def test_the_account_owner_is_not_offered_a_decision_on_his_customer(world):
    waiver = services.create(request_body(customer="ACME-001", submit=True), world["rita"])
    page = client_for("mark").get(f"/requests/{waiver.reference}/").content.decode()
    assert 'id="decision-form"' not in page
    assert "you own this customer" in page


def test_the_inbox_lists_what_waits_for_the_user_oldest_first(world):
    first = services.create(request_body(submit=True), world["rita"])
    second = services.create(request_body(submit=True), world["sam"])
    page = client_for("mona").get("/inbox/").content.decode()
    assert page.index(first.reference) < page.index(second.reference)
    assert "of 24 h" in page  # the manager tier's SLA from the policy
    assert first.reference not in client_for("dana").get("/inbox/").content.decode()


def test_the_final_approval_needs_the_checklist(world):
    waiver = services.create(
        request_body(type="volume_discount", scope={"seats": 10, "discount_pct": 10},
                     evidence={"business_impact_analysis": "yes"}, submit=True),
        world["rita"],
    )  # fmt: skip
    services.decide(waiver.reference, world["mona"], "approve")
    dana = client_for("dana")
    page = dana.get(f"/requests/{waiver.reference}/").content.decode()
    assert "The master agreement allows a non-standard discount" in page
    refused = dana.post(
        f"/requests/{waiver.reference}/decide", {"decision": "approve"}, follow=True
    )
    assert "record these checks as passed" in refused.content.decode()
    dana.post(
        f"/requests/{waiver.reference}/decide",
        {"decision": "approve", "checks": ["contract_allows_discount", "revenue_recognition"]},
    )
    waiver.refresh_from_db()
    assert waiver.status == "approved"


def test_the_waiver_page_tells_the_whole_story(waiver, world):
    services.decide(waiver.reference, world["mona"], "approve", "fine by me")
    page = client_for("olga").get(f"/requests/{waiver.reference}/").content.decode()
    for text in ("Keeps 50 analysts working", "AN-EDGE", "concession", "fine by me", "Timeline"):
        assert text in page
    assert page.count("<li><time") == 3  # created, submitted, decided


def test_the_implementation_board_lists_open_tasks_and_who_may_do_them(waiver, world):
    services.decide(waiver.reference, world["mona"], "approve")
    board = client_for("ivan").get("/implementation/").content.decode()
    assert "Bring billing in line with the authorized terms" in board
    assert "Send the customer notice" not in board  # that one is rita's
    page = client_for("ivan").get(f"/requests/{waiver.reference}/").content.decode()
    assert page.count("Mark done") == 3  # entitlements, billing, customer records
    billing = waiver.tasks.get(name="update_billing")
    ivan = client_for("ivan")
    ivan.post(f"/requests/{waiver.reference}/tasks/{billing.pk}/done", {"note": "invoiced"})
    billing.refresh_from_db()
    assert (billing.status, billing.note) == ("done", "invoiced")
    refused = client_for("rita").post(
        f"/requests/{waiver.reference}/tasks/{waiver.tasks.get(name='update_entitlements').pk}/done",
        follow=True,
    )
    assert "this task is for the implementer role" in refused.content.decode()


def test_a_person_chooses_which_events_they_are_emailed_about(world):
    rita = client_for("rita")
    rita.post("/preferences/", {"events": ["waiver.approved", "waiver.rejected"]})
    muted = Preference.objects.get(user=world["rita"]).muted
    assert "waiver.submitted" in muted and "waiver.approved" not in muted
    page = rita.get("/preferences/").content.decode()
    assert 'value="waiver.approved" checked' in page
    assert 'value="waiver.submitted">' in page


def test_the_policy_page_explains_the_rules_in_plain_language(world):
    page = client_for("charlie").get("/policy/").content.decode()
    assert "the concession in the base currency is 25,000 or more" in page
    assert "Who approves my request?" in page
    assert "Volume discount not normally offered" in page


def test_the_diff_shows_what_changed_between_versions(world):
    publish_policy(
        settings.DEFAULT_POLICY_FILE.read_text().replace("sla_hours: 24", "sla_hours: 12")
    )
    page = client_for("rita").get("/policy/diff/1/2/").content.decode()
    assert '<span class="d-del">-    sla_hours: 24</span>' in page
    assert '<span class="d-add">+    sla_hours: 12</span>' in page
    assert client_for("rita").get("/policy/diff/1/9/").status_code == 404


def test_a_token_is_shown_once_and_only_its_owner_revokes_it(world):
    rita = client_for("rita")
    page = rita.post("/tokens/", {"name": "crm", "scopes": ["read"]}).content.decode()
    raw = re.search(r'id="new-token">(wd_[^<]+)<', page)[1]
    token = ApiToken.objects.get(user__username="rita")
    assert token.scopes == ["read"]
    assert raw not in rita.get("/tokens/").content.decode()
    assert client_for("sam").post(f"/tokens/{token.pk}/revoke").status_code == 404
    rita.post(f"/tokens/{token.pk}/revoke")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_only_admins_are_offered_the_admin_scope(world):
    assert 'value="admin"' not in client_for("rita").get("/tokens/").content.decode()
    assert 'value="admin"' in client_for("adam").get("/tokens/").content.decode()
    client_for("rita").post("/tokens/", {"name": "sneaky", "scopes": ["admin"]})
    assert ApiToken.objects.get(name="sneaky").scopes != ["admin"]


def test_sign_in_checks_the_password_and_the_session_ends_when_idle(world):
    world["rita"].set_password("a long passphrase")
    world["rita"].save()
    client = Client()
    wrong = client.post("/sign-in/", {"username": "rita", "password": "guess"})
    assert "do not match" in wrong.content.decode()
    right = client.post("/sign-in/", {"username": "rita", "password": "a long passphrase"})
    assert right.status_code == 302
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST  # the 30 minutes restart with every request


def test_pages_refuse_a_post_without_the_csrf_token(waiver):
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.get(username="mona"))
    response = client.post(f"/requests/{waiver.reference}/decide", {"decision": "approve"})
    assert response.status_code == 403
    assert not Approval.objects.exists()
