"""Separation of duties (A4) on every path that reaches it: whoever has a stake in a request
may neither decide it nor shape the decision, whichever door they use; each refusal is a 403
and is recorded in the audit trail."""

import io
import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory import services as directory
from waiverdesk.governance import reviews
from waiverdesk.testing import (
    NOW,
    as_read,
    big_discount_body,
    finish_required_tasks,
    request_body,
    request_form,
)
from waiverdesk.waivers import email_intake, services
from waiverdesk.waivers.models import Approval, Waiver
from waiverdesk.waivers.tests.test_email_intake import WELL_FORMED, email

LATER = NOW + timedelta(hours=2)
FRESH = {"benefit": "b", "customer_impact": "c", "why_not_standard": "w"}


def give(user, *roles):
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.__dict__.pop("_waiverdesk_roles", None)


def api(user, scopes=None) -> Client:
    raw = tokens.create_token(user, "t", scopes)[1]
    return Client(headers={"Authorization": f"Bearer {raw}"})


ADMIN = ["read", "write", "admin"]


def post(client: Client, path: str, body: dict):
    return client.post(path, json.dumps(body), content_type="application/json")


def refusals(code: str) -> int:
    return sum(
        json.loads(p).get("code") == code
        for p in AuditEntry.objects.filter(action="waiver.refused").values_list(
            "payload", flat=True
        )
    )


def cli(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stakes(world):
    """olga owns Globex's account as well as controls; mona may control as well as approve;
    rita may control too: each is someone a requester might name to walk around the rule."""
    give(world["rita"], "control_owner")
    give(world["mona"], "control_owner")
    give(world["charlie"], "control_owner")
    directory.update_customer("GLOBEX-002", {"account_owner": "charlie"})
    world["rita"].email = "rita@example.com"
    world["rita"].save()
    return world


# -- the control owner ----------------------------------------------------------------

NAMED = {
    "rita": "must not be the requester",
    "charlie": "must not be the customer's account owner",
    "mona": "they approve on this request's route (sales_manager)",
    "sam": "does not hold the control_owner role",
}


@pytest.mark.parametrize("named", NAMED)
def test_the_service_refuses_a_control_owner_with_a_stake(stakes, named):
    with pytest.raises(Denied, match=re.escape(NAMED[named])):
        services.create(request_body(control_owner=named), stakes["rita"], now=NOW)
    assert not Waiver.objects.exists()
    assert refusals("control_owner_role" if named == "sam" else "control_owner_conflict") == 1


@pytest.mark.parametrize("named", NAMED)
def test_the_api_refuses_a_control_owner_with_a_stake(stakes, named):
    answer = post(api(stakes["rita"]), "/api/v1/waivers", request_body(control_owner=named))
    assert answer.status_code == 403
    assert NAMED[named] in answer.json()["errors"][0]["message"]
    assert not Waiver.objects.exists()


def test_the_web_form_shows_the_refused_control_owner_at_its_field(stakes):
    rita = Client()
    rita.force_login(stakes["rita"])
    form = request_form(control_owner="charlie", submit="1")
    answer = rita.post("/requests/new/temporary_access/", form)
    page = answer.content.decode()
    assert answer.status_code == 403
    assert "must not be the customer&#x27;s account owner" in page
    assert 'value="2027-03-15"' in page  # what was typed is kept
    assert not Waiver.objects.exists() and refusals("control_owner_conflict") == 1


def test_email_intake_and_the_command_line_refuse_it_too(stakes, tmp_path, trusted_mail_server):
    text = WELL_FORMED.replace("control_owner: olga", "control_owner: rita")
    answer = email_intake.receive(email("rita@example.com", text), NOW)
    assert "must not be the requester" in answer.body
    body = tmp_path / "body.json"
    body.write_text(json.dumps(request_body(control_owner="charlie")))
    with pytest.raises(CommandError, match="must not be the customer's account owner"):
        cli("waiver", "create", str(body), "--as", "rita")
    assert not Waiver.objects.exists()
    assert refusals("control_owner_conflict") == 2


def test_an_edit_a_renewal_and_an_amendment_cannot_name_one_either(stakes):
    ref = services.create(request_body(), stakes["rita"], now=NOW).reference
    with pytest.raises(Denied, match="account owner"):
        services.edit(ref, stakes["rita"], {"control_owner": "charlie"}, now=NOW)
    assert services.get(ref).control_owner.username == "olga"
    answer = post(api(stakes["rita"]), f"/api/v1/waivers/{ref}/submit", {})
    assert answer.status_code == 200
    services.decide(ref, stakes["mona"], "approve", now=LATER)
    with pytest.raises(Denied, match="must not be the requester"):
        services.renew(ref, stakes["rita"], {"end": "2027-04-30", "justification": FRESH,
                                             "control_owner": "rita"}, now=LATER)  # fmt: skip
    answer = post(api(stakes["rita"]), f"/api/v1/waivers/{ref}/amendments",
                  {"scope": {"seats": 60}, "control_owner": "mona"})  # fmt: skip
    assert answer.status_code == 403 and "approve on this request's route" in answer.text
    assert Waiver.objects.count() == 1


def test_a_submission_refuses_a_control_owner_who_has_since_gained_a_stake(stakes):
    ref = services.create(request_body(), stakes["rita"], now=NOW).reference
    directory.update_customer("GLOBEX-002", {"account_owner": "olga"})
    with pytest.raises(Denied, match="account owner"):
        services.submit(ref, stakes["rita"], now=NOW)
    assert services.get(ref).status == "draft"


# -- deciding and shaping ---------------------------------------------------------------


def test_whoever_edited_a_request_in_this_round_may_not_approve_it(world):
    give(world["adam"], "sales_manager")
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.edit(ref, world["adam"], {"scope": {"seats": 55}}, now=NOW)  # an admin's edit
    with pytest.raises(Denied, match="you edited this request in this round") as caught:
        services.decide(ref, world["adam"], "approve", now=LATER)
    assert caught.value.code == "edited_this_round"
    answer = post(api(world["adam"]), f"/api/v1/waivers/{ref}/decisions", {"decision": "approve"})
    assert answer.status_code == 403
    assert refusals("edited_this_round") == 2
    services.decide(ref, world["mona"], "approve", now=LATER)
    assert services.get(ref).status == "approved"


def test_an_admin_who_edits_a_draft_may_not_approve_the_round_it_is_submitted_in(world):
    give(world["adam"], "sales_manager")
    ref = services.create(request_body(), world["rita"], now=NOW).reference
    services.edit(ref, world["adam"], {"scope": {"seats": 55}}, now=NOW)
    services.submit(ref, world["rita"], now=NOW)
    assert services.may_act(services.get(ref), world["adam"]).startswith("you edited")


def test_evidence_no_rule_reads_keeps_the_approvals_and_a_seat_change_restarts_them(world):
    ref = services.create(request_body(end="2027-05-30", submit=True), world["rita"], NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    services.attach(ref, world["rita"], "forecast.csv", b"month,seats\n", "text/csv",
                    "usage_forecast", now=LATER)  # fmt: skip
    waiver = services.get(ref)
    assert waiver.round == 1 and waiver.status == "in_review"
    assert [s.status for s in waiver.current_route()] == ["approved", "pending"]
    edited = AuditEntry.objects.filter(object_ref=ref, action="waiver.edited").last()
    payload = json.loads(edited.payload)
    assert payload["evidence_added"] == ["usage_forecast"] and not payload["approvals_reset"]
    assert payload["material"] == []
    services.edit(ref, world["rita"], {"scope": {"seats": 60}}, now=LATER)  # material
    waiver = services.get(ref)
    assert waiver.round == 2 and waiver.status == "submitted"
    assert [s.status for s in waiver.current_route()] == ["pending", "waiting"]
    payload = json.loads(AuditEntry.objects.filter(action="waiver.edited").last().payload)
    assert payload["approvals_reset"] and payload["material"] == ["scope"]
    with pytest.raises(Denied, match="needs the sales_manager role"):
        services.decide(ref, world["dana"], "approve", now=LATER)  # the manager step again


def test_conflicted_people_may_not_override_the_risk(world):
    give(world["olga"], "policy_admin")
    give(world["adam"], "sales_manager")
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    people = {
        "rita": "self_approval",  # the requester
        "mark": "conflict_of_interest",  # ACME's account owner, on the route as a manager
        "olga": "conflict_of_interest",  # the control owner, a policy admin too
    }
    for name, code in people.items():
        with pytest.raises(Denied, match="so you may not override its risk") as caught:
            services.override_risk(ref, world[name], "financial", 1, "small", now=LATER)
        assert caught.value.code == code
        client = Client()
        client.force_login(world[name])
        client.post(f"/requests/{ref}/override",
                    {"dimension": "financial", "score": "1", "rationale": "small"})  # fmt: skip
    assert services.get(ref).risk_overrides == {}
    assert sum(refusals(code) for code in set(people.values())) == 6
    services.edit(ref, world["adam"], {"scope": {"seats": 1400}}, now=LATER)
    with pytest.raises(Denied, match="you edited this request"):
        services.override_risk(ref, world["adam"], "financial", 1, "small", now=LATER)
    services.override_risk(ref, world["dana"], "financial", 4, "large", now=LATER)


def test_the_requester_of_the_original_may_not_approve_its_renewal_or_amendment(world):
    mark = world["mark"]  # a requester and a sales manager
    ref = services.create(request_body(submit=True), mark, now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    renewal = services.renew(ref, world["adam"], {"end": "2027-04-30", "justification": FRESH,
                                                  "submit": True}, now=LATER).reference  # fmt: skip
    with pytest.raises(Denied, match=f"you requested {ref}, which this renewal continues"):
        services.decide(renewal, mark, "approve", now=LATER)
    amendment = services.amend(ref, world["adam"], {"scope": {"seats": 60}, "submit": True},
                               now=LATER).reference  # fmt: skip
    answer = post(api(mark), f"/api/v1/waivers/{amendment}/decisions", {"decision": "approve"})
    assert answer.status_code == 403 and "which this amendment continues" in answer.text
    services.decide(amendment, world["mona"], "approve", now=LATER)
    second = services.amend(amendment, world["adam"], {"scope": {"seats": 70}, "submit": True},
                            now=LATER).reference  # fmt: skip
    assert "which this amendment continues" in services.may_act(services.get(second), mark)


# -- the account owner at decision time ------------------------------------------------------


def test_a_new_account_owners_approval_this_round_is_void_and_the_step_reopens(world):
    ref = services.create(request_body(end="2027-05-30", submit=True), world["rita"], NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    services.decide(ref, world["dana"], "approve", "fine", now=LATER)
    assert services.get(ref).status == "approved"
    ref = services.create(request_body(end="2027-05-30", submit=True), world["rita"], NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    answer = api(world["adam"], ADMIN).patch(
        "/api/v1/customers/GLOBEX-002", json.dumps({"account_owner": "mona"}), "application/json"
    )
    assert answer.status_code == 200 and answer.json()["account_owner"] == "mona"
    assert answer.json()["name"] == "Globex"  # only the field given changed
    waiver = services.get(ref)
    assert [s.status for s in waiver.current_route()] == ["pending", "waiting"]
    assert waiver.status == "submitted"
    assert not Approval.objects.filter(waiver=waiver).exists()
    voided = AuditEntry.objects.get(object_ref=ref, action="waiver.approvals_voided")
    assert as_read(voided)[1]["voided"] == ["mona"]
    changed = as_read(AuditEntry.objects.filter(action="customer.changed").last())[1]
    assert changed["before"] == {"account_owner": ""} and changed["after"] == {
        "account_owner": "mona"
    }
    with pytest.raises(Denied, match="you own this customer's account"):
        services.decide(ref, world["mona"], "approve", now=LATER)
    services.decide(ref, world["mark"], "approve", now=LATER)
    services.decide(ref, world["dana"], "approve", now=LATER)
    assert services.get(ref).status == "approved"


def test_a_step_completed_by_the_new_owner_takes_later_approvals_back_with_it(world):
    ref = services.create(big_discount_body(customer="GLOBEX-002", submit=True), world["rita"],
                          now=NOW).reference  # fmt: skip
    for name in ("mona", "dana", "fiona"):
        services.decide(ref, world[name], "approve", now=LATER)
    cli("customer", "update", "GLOBEX-002", "--account-owner", "dana", "--as", "adam")
    waiver = services.get(ref)
    assert [s.status for s in waiver.current_route()] == [
        "approved", "pending", "waiting", "waiting", "waiting",
    ]  # fmt: skip
    assert list(Approval.objects.filter(waiver=waiver).values_list("user__username", flat=True))\
        == ["mona"]  # fmt: skip
    assert waiver.status == "in_review"
    services.decide(ref, world["dirk"], "approve", now=LATER)  # the other deal desk
    services.decide(ref, world["fiona"], "approve", now=LATER)  # fiona decides again


def test_a_past_owners_approval_stands_when_they_were_not_the_owner_when_they_gave_it(world):
    ref = services.create(request_body(end="2027-05-30", submit=True), world["rita"], NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    directory.update_customer("GLOBEX-002", {"account_owner": "dana"})  # dana has not decided
    directory.update_customer("GLOBEX-002", {"account_owner": ""})
    assert Approval.objects.filter(waiver__reference=ref).count() == 1
    services.decide(ref, world["dana"], "approve", now=LATER)
    assert services.get(ref).status == "approved"


def test_reference_data_cannot_be_overwritten_by_a_create(world):
    client = api(world["adam"], ADMIN)
    again = {"external_id": "ACME-001", "name": "Acme", "region": "EMEA", "account_owner": ""}
    answer = post(client, "/api/v1/customers", again)
    assert answer.status_code == 409 and answer.json()["errors"][0]["code"] == "already_exists"
    assert directory.Customer.objects.get(external_id="ACME-001").account_owner.username == "mark"
    with pytest.raises(CommandError, match="exists; change it with an update"):
        cli("customer", "add", "ACME-001", "Acme")
    answer = client.patch("/api/v1/customers/ACME-001", json.dumps({"colour": "red"}),
                          "application/json")  # fmt: skip
    assert answer.status_code == 422
    answer = client.patch("/api/v1/customers/NOBODY", json.dumps({"region": "EMEA"}),
                          "application/json")  # fmt: skip
    assert answer.status_code == 422
    change = json.dumps({"account_owner": "rita"})
    rita = api(world["rita"]).patch("/api/v1/customers/ACME-001", change, "application/json")
    assert rita.status_code == 403


# -- checks and reviews --------------------------------------------------------------------


def test_a_junior_tier_may_not_tick_the_checks_of_the_final_one(world):
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Denied, match="is recorded by the Executive committee step") as caught:
        services.decide(ref, world["mona"], "approve", checks=["contract_allows_discount"],
                        now=LATER)  # fmt: skip
    assert caught.value.code == "checks_not_yours"
    answer = post(api(world["mona"]), f"/api/v1/waivers/{ref}/decisions",
                  {"decision": "approve", "checks": ["revenue_recognition"]})  # fmt: skip
    assert answer.status_code == 403
    assert refusals("checks_not_yours") == 2
    assert services.get(ref).checks == {}


def test_a_check_the_policy_gives_to_a_tier_is_that_tiers_to_record(world):
    from django.conf import settings

    from waiverdesk.testing import publish_policy

    text = settings.DEFAULT_POLICY_FILE.read_text().replace(
        "        label: The master agreement allows a non-standard discount\n",
        "        label: The master agreement allows a non-standard discount\n        tier: legal\n",
    )
    publish_policy(text)
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    for name in ("mona", "dana", "fiona"):
        services.decide(ref, world[name], "approve", now=LATER)
    with pytest.raises(Invalid, match="The master agreement allows a non-standard discount"):
        services.decide(ref, world["leo"], "approve", now=LATER)
    services.decide(ref, world["leo"], "approve", checks=["contract_allows_discount"], now=LATER)
    services.decide(ref, world["eva"], "approve", now=LATER)
    with pytest.raises(Denied, match="is recorded by the Legal step"):
        services.decide(ref, world["edgar"], "approve", checks=["contract_allows_discount"],
                        now=LATER)  # fmt: skip
    services.decide(ref, world["edgar"], "approve", checks=["revenue_recognition"], now=LATER)
    assert services.get(ref).status == "approved"


def test_a_review_is_attested_by_its_control_owner_only(world):
    from waiverdesk.governance.models import Review

    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    finish_required_tasks(ref, world["ivan"])
    services.sweep(now=NOW.replace(month=2, day=1))
    reviews.open_due_campaigns(NOW.replace(month=4, day=1))
    review = Review.objects.get(waiver__reference=ref)
    give(world["mona"], "control_owner")
    for name in ("adam", "audrey"):  # they see every review, but own none
        with pytest.raises(Denied, match="only the exception's control owner may attest it"):
            reviews.attest(review.pk, world[name], "still_needed", "fine")
    with pytest.raises(services.NotFound):  # another control owner does not even see it
        reviews.attest(review.pk, world["mona"], "still_needed", "fine")
    assert AuditEntry.objects.filter(action="review.refused").count() == 2
    reviews.attest(review.pk, world["olga"], "still_needed", "fine")
