"""Taking a request from intake to its end through the services."""

import json
from datetime import timedelta

import pytest

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.testing import (
    NOW,
    as_read,
    big_discount_body,
    finish_required_tasks,
    publish_policy,
    request_body,
)
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver

LATER = NOW + timedelta(hours=2)


def codes(caught) -> set[tuple[str, str]]:
    return {(p.field, p.code) for p in caught.value.problems}


def test_a_request_gets_a_reference_and_the_policy_version_that_routed_it(world):
    waiver = services.create(request_body(submit=True), world["rita"], now=NOW)
    assert waiver.reference == "WVR-2027-00001"
    assert waiver.status == "submitted"
    assert waiver.policy_version.number == 1
    assert [s.tier for s in waiver.current_route()] == ["manager"]
    second = services.create(request_body(), world["rita"], now=NOW)
    assert second.reference == "WVR-2027-00002" and second.status == "draft"


def test_bad_input_is_refused_field_by_field_and_nothing_is_stored(world):
    body = request_body(
        customer="NOPE",
        products=["AN-EDGE", "GHOST"],
        start="soon",
        scope={"seats": -1},
        colour="red",
    )
    entries = AuditEntry.objects.count()
    with pytest.raises(Invalid) as caught:
        services.create(body, world["rita"], now=NOW)
    assert codes(caught) == {  # every problem at once, the references too
        ("start", "invalid"),
        ("scope.seats", "invalid"),
        ("colour", "unknown_field"),
        ("customer", "unknown_customer"),
        ("products[1]", "unknown_product"),
    }
    assert Waiver.objects.count() == 0
    assert AuditEntry.objects.count() == entries


def test_an_ineligible_request_cannot_be_submitted_and_nothing_half_made_remains(world):
    too_long = request_body(end="2027-12-31", submit=True)
    with pytest.raises(Invalid) as caught:
        services.create(too_long, world["rita"], now=NOW)
    assert ("end", "after_max_duration") in codes(caught)
    assert Waiver.objects.count() == 0
    # The same request is kept as a draft when not submitted, with its problems visible.
    draft = services.create(request_body(end="2027-12-31"), world["rita"], now=NOW)
    with pytest.raises(Invalid):
        services.submit(draft.reference, world["rita"], now=NOW)
    assert services.get(draft.reference).status == "draft"


def test_a_control_owner_is_needed_before_submission(world):
    draft = services.create(request_body(control_owner=None), world["rita"], now=NOW)
    with pytest.raises(Invalid) as caught:
        services.submit(draft.reference, world["rita"], now=NOW)
    assert codes(caught) == {("control_owner", "required")}


def test_only_the_roles_the_policy_names_may_start_a_request(world):
    with pytest.raises(Denied) as caught:
        services.create(request_body(), world["charlie"], now=NOW)
    assert caught.value.code == "not_initiator"
    assert Waiver.objects.count() == 0
    refusal = AuditEntry.objects.get(action="waiver.refused")
    assert as_read(refusal) == (
        "charlie",
        {"attempted": "create", "code": "not_initiator", "message": caught.value.message},
    )


def test_one_manager_approves_a_short_temporary_access(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", "fine", now=LATER)
    waiver = services.get(ref)
    assert waiver.status == "approved"
    assert waiver.decision == "approved" and waiver.decided_at == LATER
    assert waiver.decision_rationale == "fine"


def test_a_big_discount_climbs_every_tier_with_two_executives_and_its_checks(world):
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    route = [(s.tier, s.required, s.status) for s in services.get(ref).current_route()]
    assert route == [
        ("manager", 1, "pending"),
        ("deal_desk", 1, "waiting"),
        ("finance", 1, "waiting"),
        ("legal", 1, "waiting"),
        ("executive", 2, "waiting"),
    ]
    for person in ("mona", "dana", "fiona", "leo", "eva"):
        services.decide(ref, world[person], "approve", now=LATER)
    assert services.get(ref).status == "in_review"
    with pytest.raises(Invalid) as caught:
        services.decide(ref, world["edgar"], "approve", now=LATER)
    assert codes(caught) == {("checks", "checks_pending")}
    services.decide(
        ref,
        world["edgar"],
        "approve",
        "board agrees",
        now=LATER,
        checks=["contract_allows_discount", "revenue_recognition"],
    )
    waiver = services.get(ref)
    assert waiver.status == "approved"
    assert set(waiver.checks) == {"contract_allows_discount", "revenue_recognition"}


def test_a_requester_never_approves_their_own_request(world):
    ref = services.create(request_body(submit=True), world["mark"], now=NOW).reference
    with pytest.raises(Denied) as caught:
        services.decide(ref, world["mark"], "approve", now=LATER)
    assert caught.value.code == "self_approval"
    assert services.get(ref).status == "submitted"


def test_the_customers_account_owner_is_excluded(world):
    ref = services.create(
        request_body(customer="ACME-001", submit=True), world["rita"], now=NOW
    ).reference
    with pytest.raises(Denied) as caught:
        services.decide(ref, world["mark"], "approve", now=LATER)
    assert caught.value.code == "conflict_of_interest"
    services.decide(ref, world["mona"], "approve", now=LATER)
    assert services.get(ref).status == "approved"


def test_one_person_never_fills_two_steps_of_one_route(world):
    directory_user = world["dana"]
    from waiverdesk.directory.services import add_user

    add_user("dana", ["sales_manager"])  # dana now holds two approver roles
    ref = services.create(
        request_body(end="2027-05-30", submit=True), world["rita"], now=NOW
    ).reference
    assert [s.tier for s in services.get(ref).current_route()] == ["manager", "deal_desk"]
    directory_user = type(directory_user).objects.get(pk=directory_user.pk)
    services.decide(ref, directory_user, "approve", now=LATER)
    with pytest.raises(Denied) as caught:
        services.decide(ref, directory_user, "approve", now=LATER)
    assert caught.value.code == "already_on_route"


def test_an_approver_without_the_steps_role_is_refused(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Denied) as caught:
        services.decide(ref, world["fiona"], "approve", now=LATER)
    assert caught.value.code == "missing_role"


def test_every_refusal_is_audited(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Denied):
        services.decide(ref, world["rita"], "approve", now=LATER)
    with pytest.raises(Denied):
        services.withdraw(ref, world["mona"], now=LATER)
    refusals = AuditEntry.objects.filter(object_ref=ref, action="waiver.refused")
    assert [(as_read(e)[0], e.payload) for e in refusals] == [
        (
            "rita",
            '{"attempted":"decide","code":"self_approval","message":'
            '"you requested this waiver, so you may not decide on it"}',
        ),
        (
            "mona",
            '{"attempted":"withdraw","code":"not_requester","message":'
            '"only the requester may do this"}',
        ),
    ]
    assert audit.verify().ok


def test_editing_a_request_under_review_resets_its_approvals(world):
    ref = services.create(
        request_body(end="2027-05-30", submit=True), world["rita"], now=NOW
    ).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    assert services.get(ref).status == "in_review"
    services.edit(ref, world["rita"], {"scope": {"seats": 60}}, now=LATER)
    waiver = services.get(ref)
    assert waiver.status == "submitted" and waiver.round == 2
    assert [(s.tier, s.status, s.approvals.count()) for s in waiver.current_route()] == [
        ("manager", "pending", 0),
        ("deal_desk", "waiting", 0),
    ]
    edit = json.loads(AuditEntry.objects.get(object_ref=ref, action="waiver.edited").payload)
    assert edit["approvals_reset"] is True
    assert [s["seats"] for s in edit["changed"]["scope"]] == [50, 60]
    # mona approved the first round; she may approve the new one.
    services.decide(ref, world["mona"], "approve", now=LATER)


def test_request_changes_returns_the_request_and_resubmission_routes_it_again(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Invalid):
        services.decide(ref, world["mona"], "request_changes", "", now=LATER)
    services.decide(ref, world["mona"], "request_changes", "add the renewal date", now=LATER)
    assert services.get(ref).status == "changes_requested"
    services.edit(
        ref, world["rita"], {"justification": {"benefit": "renewal signs 15 Feb"}}, now=LATER
    )
    services.submit(ref, world["rita"], now=LATER)
    services.decide(ref, world["mona"], "approve", now=LATER)
    assert services.get(ref).status == "approved"


def test_a_rejection_is_final(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "reject", "buy the seats", now=LATER)
    waiver = services.get(ref)
    assert waiver.status == "rejected" and waiver.decision == "rejected"
    for act in (
        lambda: services.submit(ref, world["rita"], now=LATER),
        lambda: services.edit(ref, world["rita"], {"region": "EMEA"}, now=LATER),
        lambda: services.withdraw(ref, world["rita"], now=LATER),
    ):
        with pytest.raises(Denied) as caught:
            act()
        assert caught.value.code == "invalid_state"


def test_conditions_are_obligations_with_owner_and_due_date(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Invalid) as caught:
        services.decide(
            ref,
            world["mona"],
            "approve",
            now=LATER,
            conditions=[{"text": "", "owner": "ghost", "due": "2026-01-01"}],
        )
    assert codes(caught) == {
        ("conditions[0].text", "required"),
        ("conditions[0].owner", "unknown_user"),
        ("conditions[0].due", "in_past"),
    }
    services.decide(
        ref,
        world["mona"],
        "approve",
        now=LATER,
        conditions=[{"text": "Send usage report", "owner": "olga", "due": "2027-03-01"}],
    )
    (condition,) = services.get(ref).conditions.all()
    assert (condition.owner.username, str(condition.due), condition.status) == (
        "olga",
        "2027-03-01",
        "open",
    )


def test_a_reviewer_overrides_a_risk_score_with_a_rationale_and_the_route_follows(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Invalid) as caught:
        services.override_risk(ref, world["mona"], "compliance", 7, "", now=LATER)
    assert codes(caught) == {("score", "invalid"), ("rationale", "required")}
    services.override_risk(ref, world["mona"], "compliance", 5, "regulator inquiry", now=LATER)
    waiver = services.get(ref)
    assert waiver.risk["compliance"] == 5 and waiver.risk["overall"] == "critical"
    assert waiver.risk["rules"]["compliance"] == "overridden by mona: regulator inquiry"
    assert [s.tier for s in waiver.current_route()] == ["manager", "legal", "executive"]


def test_the_clock_activates_and_expires_exactly_once(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    day = NOW.replace(month=2, day=1)
    assert services.sweep(now=day) == []  # the implementation work is not done yet
    finish_required_tasks(ref, world["ivan"], now=LATER)
    assert services.sweep(now=day - timedelta(days=1)) == []
    assert services.sweep(now=day, dry_run=True) == [(ref, "activate")]
    assert services.get(ref).status == "approved"
    assert services.sweep(now=day) == [(ref, "activate")]
    assert services.sweep(now=day) == []
    assert services.sweep(now=NOW.replace(month=3, day=15)) == []  # the last day is still in force
    assert services.sweep(now=NOW.replace(month=3, day=16)) == [(ref, "expire")]
    assert services.get(ref).status == "expired"
    assert [e.action for e in audit.entries_for("waiver", ref)][-2:] == [
        "waiver.active",
        "waiver.expired",
    ]


def test_termination_is_for_the_control_owner_or_admin_with_a_reason(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    with pytest.raises(Denied):
        services.terminate(ref, world["rita"], "no longer needed", now=LATER)
    with pytest.raises(Invalid):
        services.terminate(ref, world["olga"], " ", now=LATER)
    services.terminate(ref, world["olga"], "renewal signed", now=LATER)
    waiver = services.get(ref)
    assert waiver.status == "terminated" and waiver.ended_reason == "renewal signed"


def approved_access(world, **changes) -> str:
    ref = services.create(request_body(submit=True, **changes), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=LATER)
    return ref


def test_a_renewal_is_a_new_linked_request_with_fresh_justification(world):
    ref = approved_access(world)
    with pytest.raises(Invalid) as caught:
        services.renew(ref, world["rita"], {}, now=LATER)
    assert codes(caught) == {("justification", "required"), ("end", "required")}
    old = services.get(ref)
    with pytest.raises(Invalid) as caught:
        services.renew(
            ref, world["rita"], {"end": "2027-04-30", "justification": old.justification}, now=LATER
        )
    assert codes(caught) == {("justification", "not_fresh")}
    fresh = {
        "benefit": "signature slipped to April",
        "customer_impact": "no outage",
        "why_not_standard": "legal review",
    }
    renewal = services.renew(
        ref, world["rita"], {"end": "2027-04-30", "justification": fresh, "submit": True}, now=LATER
    )
    assert renewal.predecessor.reference == ref and renewal.kind == "renewal"
    assert renewal.renewal_count == 1 and str(renewal.start) == "2027-03-16"
    assert renewal.status == "submitted"
    with pytest.raises(Denied) as caught:
        services.renew(ref, world["rita"], {"end": "2027-04-30", "justification": fresh}, now=LATER)
    assert caught.value.code == "renewal_exists"


def test_a_renewal_must_be_approved_before_the_old_exception_ends(world):
    ref = approved_access(world)
    fresh = {"benefit": "b", "customer_impact": "c", "why_not_standard": "w"}
    renewal = services.renew(
        ref, world["rita"], {"end": "2027-04-30", "justification": fresh, "submit": True}, now=LATER
    ).reference
    after_end = NOW.replace(month=3, day=16)
    services.sweep(now=after_end)
    with pytest.raises(Denied) as caught:
        services.decide(renewal, world["mona"], "approve", now=after_end)
    assert caught.value.code == "predecessor_ended"


def test_renewals_count_and_the_second_one_goes_to_the_executive_tier(world):
    ref = approved_access(world)
    fresh = {"benefit": "b", "customer_impact": "c", "why_not_standard": "w"}
    first = services.renew(
        ref, world["rita"], {"end": "2027-04-30", "justification": fresh, "submit": True}, now=LATER
    ).reference
    services.decide(first, world["mona"], "approve", now=LATER)
    second = services.renew(
        first,
        world["rita"],
        {"end": "2027-05-30", "justification": {**fresh, "benefit": "again"}, "submit": True},
        now=LATER,
    )
    assert second.renewal_count == 2
    assert "renewal_chain" in [t["name"] for t in second.triggers]
    assert "executive" in [s.tier for s in second.current_route()]


def test_an_amendment_goes_through_policy_again_and_supersedes_the_original(world):
    ref = approved_access(world)
    amendment = services.amend(
        ref, world["rita"], {"scope": {"seats": 400}, "submit": True}, now=LATER
    )
    assert [s.tier for s in amendment.current_route()] == ["manager"]
    assert amendment.risk["operational"] == 3
    services.decide(amendment.reference, world["mona"], "approve", now=LATER)
    assert services.get(ref).status == "superseded"
    assert services.get(amendment.reference).status == "approved"
    assert audit.verify().ok


def test_publishing_a_new_policy_never_changes_the_past(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    stricter = services.policy_of(services.get(ref)).source.replace(
        "    max_duration_days: 120\n    review_window_days: 60",
        "    max_duration_days: 30\n    review_window_days: 30",
    )
    publish_policy(stricter, note="shorter temporary access")
    waiver = services.get(ref)
    assert waiver.policy_version.number == 1
    services.decide(ref, world["mona"], "approve", now=LATER)  # decided under v1
    assert services.get(ref).status == "approved"
    with pytest.raises(Invalid) as caught:
        services.create(request_body(submit=True), world["rita"], now=NOW)
    assert ("end", "after_max_duration") in codes(caught)


def test_attachments_are_checked_and_provide_evidence(world, settings):
    body = request_body(type="seat_overage")
    ref = services.create(body, world["rita"], now=NOW).reference
    with pytest.raises(Invalid) as caught:
        services.submit(ref, world["rita"], now=NOW)
    assert codes(caught) == {("evidence.usage_forecast", "required")}
    with pytest.raises(Invalid) as caught:
        services.attach(
            ref, world["rita"], "f.pdf", b"MZ\x90\x00", "application/pdf", "usage_forecast"
        )
    assert codes(caught) == {("file", "type_mismatch")}
    settings.ATTACHMENT_MAX_BYTES = 10
    with pytest.raises(Invalid) as caught:
        services.attach(ref, world["rita"], "f.csv", b"a,b\n" * 10, "text/csv", "usage_forecast")
    assert codes(caught) == {("file", "too_large")}
    settings.ATTACHMENT_MAX_BYTES = 1000
    attachment = services.attach(
        ref, world["rita"], "forecast.csv", b"month,seats\n1,80\n", "text/csv", "usage_forecast"
    )
    assert (settings.ATTACHMENT_DIR / attachment.sha256[:2] / attachment.sha256).read_bytes() == (
        b"month,seats\n1,80\n"
    )
    services.submit(ref, world["rita"], now=NOW)
    assert services.get(ref).status == "submitted"


def test_an_attachment_refused_after_upload_leaves_no_file(world, settings):
    ref = services.create(request_body(), world["rita"], now=NOW).reference
    with pytest.raises(Denied):
        services.attach(ref, world["mona"], "x.txt", b"hello", "text/plain", "notes")
    assert [p for p in settings.ATTACHMENT_DIR.rglob("*") if p.is_file()] == []


def test_simulation_evaluates_without_saving(world):
    result = services.simulate(big_discount_body(), now=NOW)
    assert result.policy_version == 1
    assert [s.tier for s in result.evaluation.route][-1] == "executive"
    assert Waiver.objects.count() == 0
