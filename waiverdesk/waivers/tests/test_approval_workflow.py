"""The approval workflow at the speed of business (A3-A5, A7, S3): delegation with separation
of duties checked against both people, reminders and escalation of late steps, lapse of
requests nobody decides, re-approval only when something material changed, parallel tiers,
bulk decisions, and only those who may decide being asked."""

import io
import json
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from waiverdesk.api import services as tokens
from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory import services as directory
from waiverdesk.insight import metrics
from waiverdesk.notifications.models import Message
from waiverdesk.testing import (
    NOW,
    as_read,
    big_discount_body,
    client_for,
    email_text,
    publish_policy,
    request_body,
)
from waiverdesk.waivers import access, services
from waiverdesk.waivers.models import Approval, RouteStep
from waiverdesk.waivers.services import delegating

LATER = NOW + timedelta(hours=2)
TODAY = NOW.date()


pytestmark = pytest.mark.usefixtures("mail_and_a_fixed_clock")


def give(user, *roles):
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.__dict__.pop("_waiverdesk_roles", None)


def away(world, who, to, first=TODAY, last=TODAY + timedelta(days=14), role=""):
    return delegating.delegate(world[who], world[to], first, last, world[who], role, now=NOW)


def filed(world, body=None, who="rita"):
    return services.create(body or request_body(submit=True), world[who], now=NOW).reference


def actions(ref):
    return list(AuditEntry.objects.filter(object_ref=ref).values_list("action", flat=True))


def emails(event, ref=None):
    found = Message.objects.filter(channel="email", event=event)
    found = found.filter(object_ref=ref) if ref else found
    return sorted(found.values_list("recipient", flat=True))


# --- Delegation and separation of duties ---------------------------------------------------


def test_a_delegate_decides_in_the_approvers_tier_recorded_as_theirs_for_the_approver(world):
    away(world, "mona", "sam")
    ref = filed(world)
    approval = services.decide(ref, world["sam"], "approve", now=LATER)
    assert (approval.user.username, approval.on_behalf_of.username) == ("sam", "mona")
    assert services.get(ref).status == "approved"
    entry = AuditEntry.objects.filter(object_ref=ref, action="waiver.decided").get()
    assert as_read(entry)[1]["on_behalf_of"] == "mona"
    page = client_for("rita").get(f"/requests/{ref}/").content.decode()
    assert "sam for mona approve" in page and "sam</strong> for <strong>mona" in page
    _t, secret = tokens.create_token(world["rita"], "laptop", ["read"])
    shown = client_for("anonymous").get(f"/api/v1/waivers/{ref}",
                                        HTTP_AUTHORIZATION=f"Bearer {secret}").json()  # fmt: skip
    assert shown["route"][0]["approvals"][0]["on_behalf_of"] == "mona"


def test_the_delegate_who_requested_it_may_not_decide_it_for_the_approver(world):
    away(world, "mona", "rita")
    ref = filed(world)
    with pytest.raises(Denied, match="you requested this waiver"):
        services.decide(ref, world["rita"], "approve", now=LATER)
    assert not Approval.objects.filter(waiver__reference=ref).exists()
    assert "waiver.refused" in actions(ref)


def test_a_delegate_who_owns_the_customers_account_may_not_decide_for_the_approver(world):
    directory.update_customer("GLOBEX-002", {"account_owner": "sam"})
    away(world, "mona", "sam")
    ref = filed(world)
    with pytest.raises(Denied, match="you own this customer's account"):
        services.decide(ref, world["sam"], "approve", now=LATER)


def test_a_delegate_may_not_decide_for_an_approver_who_is_conflicted(world):
    # mark owns Acme's account; his delegate may not decide Acme's requests in his place.
    give(world["sam"], "requester")
    away(world, "mark", "sam", role="sales_manager")
    ref = filed(world, request_body(customer="ACME-001", submit=True))
    with pytest.raises(Denied, match="decide for mark, and mark owns this customer's account"):
        services.decide(ref, world["sam"], "approve", now=LATER)
    assert services.may_act(services.get(ref), world["sam"]).startswith("you would decide")
    assert not access.decidable_by(world["sam"]).filter(reference=ref).exists()
    assert access.held_back_from(world["sam"]).filter(reference=ref).exists()


def test_a_delegation_never_makes_one_person_fill_two_steps(world):
    # The delegate approved one step on their own; they may not fill another for someone.
    away(world, "dana", "mona", role="deal_desk")
    ref = filed(world, request_body(end="2027-05-30", submit=True))  # manager, deal desk
    services.decide(ref, world["mona"], "approve", now=LATER)
    with pytest.raises(Denied, match="one person fills one step"):
        services.decide(ref, world["mona"], "approve", now=LATER)
    # The approver decided one step; their delegate may not fill another in their name.
    give(world["mark"], "deal_desk")
    away(world, "mark", "charlie", role="deal_desk")
    other = filed(world, request_body(end="2027-05-30", submit=True))
    services.decide(other, world["mark"], "approve", now=LATER)  # the manager step
    with pytest.raises(Denied, match="mark has already decided on a step of this route"):
        services.decide(other, world["charlie"], "approve", now=LATER)
    # Nor may the approver decide once their delegate has decided for them.
    ref3 = filed(world, request_body(end="2027-05-30", submit=True))
    away(world, "mona", "charlie", role="sales_manager")
    services.decide(ref3, world["charlie"], "approve", now=LATER)  # manager, for mona
    give(world["mona"], "deal_desk")
    with pytest.raises(Denied, match="one person fills one step"):
        services.decide(ref3, world["mona"], "approve", now=LATER)


def test_a_delegation_counts_only_on_its_days_and_until_it_is_called_off(world):
    made = away(world, "mona", "sam", first=date(2027, 1, 10), last=date(2027, 1, 20))
    ref = filed(world)
    for before_or_after in (NOW, NOW.replace(day=21)):
        with pytest.raises(Denied, match="needs the sales_manager role"):
            services.decide(ref, world["sam"], "approve", now=before_or_after)
    delegating.end(made.pk, world["mona"], now=NOW)
    with pytest.raises(Denied, match="needs the sales_manager role"):
        services.decide(ref, world["sam"], "approve", now=NOW.replace(day=15))
    again = away(world, "mona", "sam", first=date(2027, 1, 10), last=date(2027, 1, 20))
    assert services.decide(ref, world["sam"], "approve", now=NOW.replace(day=20)).pk
    assert "delegation.created" in AuditEntry.objects.values_list("action", flat=True)
    assert delegating.of(world["sam"]).count() == 2 and again.ended_at is None


def test_a_tier_the_policy_marks_undelegable_is_never_decided_by_a_delegate(world, settings):
    text = settings.DEFAULT_POLICY_FILE.read_text().replace(
        "    sla_hours: 24\n", "    sla_hours: 24\n    delegable: false\n", 1
    )
    publish_policy(text, "the manager's tier decided in person")
    away(world, "mona", "sam")
    ref = filed(world)
    with pytest.raises(Denied, match="does not let the manager step be delegated"):
        services.decide(ref, world["sam"], "approve", now=LATER)
    assert not access.pending_for(world["sam"]).filter(reference=ref).exists()


def test_the_executive_tier_may_not_be_delegated_by_default(world):
    ref = _to_the_parallel_stage(world)
    services.decide(ref, world["leo"], "approve", now=LATER)
    services.decide(ref, world["fiona"], "approve", now=LATER)  # the executive step opens
    away(world, "eva", "charlie")
    with pytest.raises(Denied, match="does not let the executive step be delegated"):
        services.decide(ref, world["charlie"], "approve", now=LATER)
    assert not access.pending_for(world["charlie"]).filter(reference=ref).exists()


def test_a_delegation_with_problems_is_refused_with_all_of_them_and_nothing_stored(world):
    with pytest.raises(Invalid) as refused:
        delegating.delegate(world["rita"], world["rita"], "2027-02-10", "2027-02-01",
                            world["rita"], "finance", now=NOW)  # fmt: skip
    fields = {p.field for p in refused.value.problems}
    assert fields == {"role", "delegate", "ends"}
    with pytest.raises(Invalid) as refused:
        delegating.delegate(world["mona"], "nobody", "soon", "", world["mona"], now=NOW)
    assert {p.field for p in refused.value.problems} == {"delegate", "starts", "ends"}
    with pytest.raises(Denied, match="only the approver or an admin"):
        delegating.delegate(world["mona"], world["sam"], TODAY, TODAY, world["dana"], now=NOW)
    assert delegating.delegate(world["mona"], world["sam"], TODAY, TODAY, world["adam"], now=NOW)
    assert not delegating.of(world["rita"]).exists()


def test_no_chains_a_person_away_is_no_delegate_and_overlaps_are_refused(world):
    away(world, "dana", "sam")
    with pytest.raises(Invalid, match="dana is away then too"):
        away(world, "mona", "dana")
    with pytest.raises(Invalid, match="has already delegated"):
        away(world, "dana", "charlie", first=TODAY + timedelta(days=3))
    # What was handed to someone is not theirs to hand on: dana holds no sales_manager role.
    away(world, "mona", "dirk")
    with pytest.raises(Invalid, match="does not decide as sales_manager"):
        away(world, "dirk", "charlie", role="sales_manager")


def test_a_delegates_inbox_holds_what_they_may_decide_for_the_approver(world):
    away(world, "mona", "sam")
    ref = filed(world)
    acme = filed(world, request_body(customer="ACME-001", submit=True), who="mark")
    assert access.search(world["sam"], pending_for_me=True).filter(reference=ref).exists()
    assert client_for("sam").get(f"/requests/{ref}/").status_code == 200
    page = client_for("sam").get(f"/requests/{ref}/").content.decode()
    assert 'id="deciding-for"' in page and "mona" in page
    # mark's own request: mona may decide it, and so sam for her; once the delegation is
    # called off, neither is in sam's inbox.
    assert set(access.decidable_by(world["sam"]).values_list("reference", flat=True)) == {
        ref, acme}  # fmt: skip
    delegating.end(delegating.of(world["sam"]).get().pk, world["sam"], now=NOW)
    assert not access.decidable_by(world["sam"]).exists()
    assert client_for("sam").get(f"/requests/{ref}/").status_code == 404


def test_delegation_from_the_api_the_command_line_and_the_page(world):
    _token, secret = tokens.create_token(world["mona"], "laptop", ["read", "decide"])
    api = client_for("anonymous")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    body = {"delegate": "sam", "starts": "2027-01-04", "ends": "2027-01-08"}
    made = api.post("/api/v1/delegations", body, content_type="application/json", **auth)
    assert made.status_code == 201, made.content
    assert made.json()["delegator"] == "mona" and made.json()["role"] is None
    bad = api.post("/api/v1/delegations", {"delegate": "mona", "starts": "x", "ends": ""},
                   content_type="application/json", **auth)  # fmt: skip
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"delegate", "starts", "ends"}
    listed = api.get("/api/v1/delegations", **auth).json()
    assert [d["delegate"] for d in listed] == ["sam"]
    ended = api.post(f"/api/v1/delegations/{listed[0]['id']}/end", **auth)
    assert ended.status_code == 200 and ended.json()["ended_at"]
    # The command line.
    out = io.StringIO()
    call_command("delegate", "dana", "--to", "dirk", "--from", "2027-01-04", "--until",
                 "2027-01-06", stdout=out)  # fmt: skip
    assert "dirk decides for dana" in out.getvalue()
    with pytest.raises(CommandError, match="delegate: a person cannot delegate to themselves"):
        call_command("delegate", "dana", "--to", "dana", "--from", "2027-01-04", "--until",
                     "2027-01-05")  # fmt: skip
    out = io.StringIO()
    call_command("delegate", "dana", "--list", stdout=out)
    assert "dana -> dirk" in out.getvalue()
    # The page under the person's settings.
    page = client_for("fiona")
    assert page.get("/settings/delegations/").status_code == 200
    refused = page.post("/settings/delegations/", {"delegate": "", "starts": "2027-01-04",
                                                   "ends": "2027-01-01"})  # fmt: skip
    assert refused.status_code == 422
    text = refused.content.decode()
    assert "Who decides for you: name an active person" in text
    assert "Until: the last day is before the first" in text
    form = {"delegate": "felix", "starts": "2027-01-04", "ends": "2027-01-09", "role": "finance"}
    done = page.post("/settings/delegations/", form)
    assert done.status_code == 302
    assert delegating.of(world["fiona"]).get().delegate.username == "felix"
    assert "felix" in page.get("/settings/delegations/").content.decode()


# --- Late steps and requests nobody decides --------------------------------------------------


def test_a_late_step_reminds_once_then_escalates_once_to_the_next_tier(world):
    ref = filed(world)  # the manager's step: 24 hours, then deal desk after 72
    assert services.chase(now=NOW + timedelta(hours=23)) == []
    assert len(services.chase(now=NOW + timedelta(hours=24))) == 1
    assert services.chase(now=NOW + timedelta(hours=30)) == []
    assert emails("step.overdue", ref) == ["mark@example.com", "mona@example.com"]
    with pytest.raises(Denied, match="needs the sales_manager role"):
        services.decide(ref, world["dana"], "approve", now=NOW + timedelta(hours=71))
    assert len(services.chase(now=NOW + timedelta(hours=72))) == 1
    assert services.chase(now=NOW + timedelta(hours=200)) == []
    assert emails("step.escalated", ref) == ["dana@example.com", "dirk@example.com"]
    assert actions(ref).count("step.overdue") == 1 and actions(ref).count("step.escalated") == 1
    assert access.decidable_by(world["dana"]).filter(reference=ref).exists()
    approval = services.decide(ref, world["dana"], "approve", now=NOW + timedelta(hours=73))
    assert approval.step.tier == "manager" and services.get(ref).status == "approved"


def test_a_step_escalated_to_the_admins_may_be_decided_by_an_admin(world, settings):
    text = settings.DEFAULT_POLICY_FILE.read_text().replace(
        "    escalate_after_hours: 72\n    escalate_to: next_tier\n",
        "    escalate_after_hours: 30\n    escalate_to: admins\n", 1,
    )  # fmt: skip
    publish_policy(text, "late manager steps to the admins")
    ref = filed(world)
    services.chase(now=NOW + timedelta(hours=31))
    assert emails("step.escalated", ref) == ["adam@example.com"]
    assert services.decide(ref, world["adam"], "approve", now=NOW + timedelta(hours=32)).pk


def test_a_decided_step_is_neither_reminded_nor_escalated(world):
    ref = filed(world)
    services.decide(ref, world["mona"], "approve", now=LATER)
    assert services.chase(now=NOW + timedelta(days=30)) == []
    assert "step.overdue" not in actions(ref)


def test_a_request_nobody_decides_lapses_at_its_end_date_and_everyone_is_told_once(world):
    ref = filed(world, big_discount_body(submit=True))  # no lapse_after_days for its type
    services.decide(ref, world["mona"], "approve", now=LATER)
    services.sweep(now=NOW.replace(year=2028, month=6, day=30))
    assert services.get(ref).status == "in_review"
    done = services.sweep(now=NOW.replace(year=2028, month=7, day=1))
    assert done == [(ref, "lapse")]
    waiver = services.get(ref)
    assert waiver.status == "lapsed"
    assert set(waiver.current_route().values_list("status", flat=True)) <= {"approved", "closed"}
    assert emails("waiver.lapsed", ref) == ["dana@example.com", "dirk@example.com",
                                            "rita@example.com"]  # fmt: skip
    assert services.sweep(now=NOW.replace(year=2028, month=8, day=1)) == []
    assert actions(ref).count("waiver.lapsed") == 1
    with pytest.raises(Denied, match="cannot approve step a waiver that is lapsed"):
        services.decide(ref, world["dana"], "approve", now=NOW.replace(year=2028, month=8))
    period = metrics.Period.parse("2027")
    assert metrics.compute(period)["lapsed"] == 1
    assert audit.verify().ok


def test_a_type_that_says_so_lapses_days_after_its_start_and_changes_requested_too(world):
    ref = filed(world)  # temporary access, from 2027-02-01: it lapses 30 days after
    services.decide(ref, world["mona"], "request_changes", "which seats?", now=LATER)
    assert services.sweep(now=NOW.replace(month=3, day=2)) == []
    assert services.sweep(now=NOW.replace(month=3, day=3)) == [(ref, "lapse")]
    assert services.get(ref).status == "lapsed"


# --- Only those who may decide are asked ------------------------------------------------------


def test_the_account_owner_is_not_asked_to_decide_what_he_may_not(world):
    ref = filed(world, request_body(customer="ACME-001", submit=True))
    assert emails("waiver.step_opened", ref) == ["mona@example.com"]  # not mark, the owner
    assert not access.search(world["mark"], pending_for_me=True).filter(reference=ref).exists()
    assert access.inbox_of(world["mark"]).counts() == (0, 1)
    page = client_for("rita").get(f"/requests/{ref}/").content.decode()
    assert "Sales manager: mona" in page


# --- Re-approval only when it matters ---------------------------------------------------------


def test_a_typo_in_the_justification_keeps_the_approvals_and_tells_the_approvers(world):
    ref = filed(world, request_body(end="2027-05-30", submit=True))  # manager, deal desk
    services.decide(ref, world["mona"], "approve", now=LATER)
    Message.objects.all().delete()
    services.edit(ref, world["rita"], {"justification": {"benefit": "Keeps 50 analysts working."}},
                  now=LATER)  # fmt: skip
    waiver = services.get(ref)
    assert waiver.round == 1 and waiver.status == "in_review"
    assert list(waiver.current_route().values_list("status", flat=True)) == ["approved", "pending"]
    assert emails("waiver.edited", ref) == ["dana@example.com", "dirk@example.com",
                                            "mona@example.com"]  # fmt: skip
    told = email_text(Message.objects.get(event="waiver.edited", recipient="dana@example.com"))
    assert "/decide/" in told  # dana may decide: fresh links
    assert "/decide/" not in email_text(Message.objects.get(recipient="mona@example.com"))
    page = client_for("rita").get(f"/requests/{ref}/").content.decode()
    assert "nothing material changed: the approvals given still count" in page
    # Emptying a required field is refused all the same, and nothing changes.
    with pytest.raises(Invalid):
        services.edit(ref, world["rita"], {"justification": {"benefit": ""}}, now=LATER)
    assert services.get(ref).justification["benefit"] == "Keeps 50 analysts working."


def test_an_edit_that_changes_the_route_restarts_the_approvals_even_of_an_immaterial_field(world):
    ref = filed(world)  # temporary access: its financials are not material, but read by rules
    services.decide(ref, world["mona"], "request_changes", "more", now=LATER)
    services.submit(ref, world["rita"], now=LATER)
    big = {"financials": {"currency": "EUR", "list_value": 90000, "concession": 30000}}
    services.edit(ref, world["rita"], big, now=LATER)
    waiver = services.get(ref)
    assert waiver.round == 3
    payload = json.loads(AuditEntry.objects.filter(action="waiver.edited").last().payload)
    assert payload["material"] == ["route or risk"] and payload["approvals_reset"]
    assert "a material change (route or risk)" in client_for("rita").get(
        f"/requests/{ref}/").content.decode()  # fmt: skip


# --- Parallel tiers -------------------------------------------------------------------------


def _to_the_parallel_stage(world):
    """A request for every tier, decided up to finance and legal."""
    ref = filed(world, big_discount_body(submit=True))
    services.decide(ref, world["mona"], "approve", now=LATER)
    services.decide(ref, world["dana"], "approve", now=LATER)
    return ref


def test_finance_and_legal_are_open_together_and_executive_opens_when_both_approve(world):
    ref = filed(world, big_discount_body(submit=True))
    services.decide(ref, world["mona"], "approve", now=LATER)
    Message.objects.all().delete()
    services.decide(ref, world["dana"], "approve", now=LATER)
    states = dict(services.get(ref).current_route().values_list("tier", "status"))
    assert states == {"manager": "approved", "deal_desk": "approved", "finance": "pending",
                      "legal": "pending", "executive": "waiting"}  # fmt: skip
    assert emails("waiver.step_opened", ref) == ["felix@example.com", "fiona@example.com",
                                                 "lara@example.com", "leo@example.com"]  # fmt: skip
    services.decide(ref, world["leo"], "approve", now=LATER)
    assert RouteStep.objects.get(waiver__reference=ref, round=1, tier="executive").status == (
        "waiting")  # fmt: skip
    services.decide(ref, world["fiona"], "approve", now=LATER)
    assert RouteStep.objects.get(waiver__reference=ref, round=1, tier="executive").status == (
        "pending")  # fmt: skip
    page = client_for("rita").get(f"/requests/{ref}/").content.decode()
    assert "at the same time as legal" in page


def test_a_rejection_in_one_parallel_tier_rejects_and_closes_the_other(world):
    ref = _to_the_parallel_stage(world)
    services.decide(ref, world["leo"], "reject", "export control", now=LATER)
    states = dict(services.get(ref).current_route().values_list("tier", "status"))
    assert states["legal"] == "rejected" and states["finance"] == "closed"
    assert services.get(ref).status == "rejected"
    with pytest.raises(Denied):
        services.decide(ref, world["fiona"], "approve", now=LATER)


def test_one_person_with_both_parallel_roles_fills_one_of_them(world):
    give(world["felix"], "legal")
    ref = _to_the_parallel_stage(world)
    services.decide(ref, world["felix"], "approve", tier="legal", now=LATER)
    with pytest.raises(Denied, match="one person fills one step"):
        services.decide(ref, world["felix"], "approve", now=LATER)


# --- Bulk decisions -------------------------------------------------------------------------


def test_bulk_decisions_through_the_api_answer_for_each_item(world):
    mine = [filed(world) for _ in range(2)]
    conflicted = filed(world, request_body(customer="ACME-001", submit=True), who="mark")
    _token, secret = tokens.create_token(world["mona"], "laptop", ["read", "decide"])
    api, auth = client_for("anonymous"), {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    own = filed(world, request_body(submit=True), who="rita")
    services.decide(own, world["mona"], "approve", now=LATER)  # already approved
    body = {"references": [*mine, conflicted, own, "WVR-1999-00001"], "decision": "approve",
            "comment": "fine"}  # fmt: skip
    answer = api.post("/api/v1/decisions", body, content_type="application/json", **auth)
    assert answer.status_code == 200, answer.content
    results = {r["reference"]: r for r in answer.json()["results"]}
    assert [results[r]["decided"] for r in mine] == [True, True]
    assert results[mine[0]]["status"] == "approved"
    assert results[conflicted]["decided"]  # mona may decide mark's request
    assert results[own]["errors"][0]["code"] == "invalid_state"
    assert results["WVR-1999-00001"]["errors"][0]["code"] == "not_found"
    assert actions(mine[0]).count("waiver.decided") == 1
    # A reject without a comment is the same mistake for every item: nothing is decided.
    more = [filed(world) for _ in range(2)]
    wrong = api.post("/api/v1/decisions", {"references": more, "decision": "reject"},
                     content_type="application/json", **auth)  # fmt: skip
    assert wrong.status_code == 422
    assert not Approval.objects.filter(waiver__reference__in=more).exists()
    # A refusal for separation of duties is per item.
    _t, marks = tokens.create_token(world["mark"], "laptop", ["read", "decide"])
    acme = filed(world, request_body(customer="ACME-001", submit=True))
    body = {"references": [acme, *more], "decision": "approve"}
    answer = api.post("/api/v1/decisions", body, content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {marks}")  # fmt: skip
    results = {r["reference"]: r for r in answer.json()["results"]}
    assert results[acme]["errors"][0]["code"] == "conflict_of_interest"
    assert all(results[r]["decided"] for r in more)


def test_an_admin_sets_a_delegation_for_someone_and_nobody_else_may(world):
    api = client_for("anonymous")
    body = {"delegator": "mona", "delegate": "sam", "starts": "2027-01-04", "ends": "2027-01-08"}
    for who, expected in (("dana", 403), ("adam", 201)):
        _t, secret = tokens.create_token(world[who], "laptop", ["read", "decide"])
        made = api.post("/api/v1/delegations", body, content_type="application/json",
                        HTTP_AUTHORIZATION=f"Bearer {secret}")  # fmt: skip
        assert made.status_code == expected, made.content
    assert delegating.of(world["mona"]).get().created_by.username == "adam"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}  # adam's
    unknown = api.post("/api/v1/delegations", {**body, "delegator": "nobody"},
                       content_type="application/json", **auth)  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "delegator"
    page = client_for("adam").post("/settings/delegations/", {**body, "delegator": "dana",
                                                              "delegate": "dirk"})  # fmt: skip
    assert (
        page.status_code == 302 and delegating.of(world["dana"]).get().delegate.username == "dirk"
    )
