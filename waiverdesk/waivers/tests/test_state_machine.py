"""A hypothesis state machine over the services: whatever people do, in whatever order,
the rules hold. People hold several roles at once; they create, edit, override, decide, renew,
amend, change account owners, delegate their decisions and attest, and the machine keeps its
own account of who has a stake in each request at each moment, to hold the services to it."""

import contextlib
import json
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Count, F, Q
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.core.lifecycle import IN_FORCE, TERMINAL, TRANSITIONS, UNDER_REVIEW
from waiverdesk.directory import services as directory
from waiverdesk.governance import reviews
from waiverdesk.governance.models import Review
from waiverdesk.testing import NOW, big_discount_body, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Approval, RouteStep, Waiver
from waiverdesk.waivers.services import NotFound

BODIES = [
    request_body(),  # one manager
    request_body(end="2027-05-30"),  # manager, deal desk
    big_discount_body(),  # every tier, two executives, checks
]
APPROVERS = [
    "mona",
    "mark",
    "dana",
    "dirk",
    "fiona",
    "felix",
    "leo",
    "lara",
    "eva",
    "edgar",
    "erin",
    "rita",
    "charlie",
    "adam",
    "olga",
]
REQUESTERS = ["rita", "mark", "dana"]  # mark manages sales, dana is on the deal desk too
CONTROL_OWNERS = ["olga", "olga", "mona"]  # mona approves on every route: always refused
EXTRA_ROLES = {
    "mona": ["control_owner"],
    "dana": ["requester"],
    "adam": ["sales_manager", "deal_desk"],  # an admin who can edit anyone's request
    "olga": ["policy_admin"],
}
CUSTOMERS = ["GLOBEX-002", "ACME-001"]
FRESH = {"benefit": "b", "customer_impact": "c", "why_not_standard": "w"}
ALLOWED_MOVES = {(src, dst) for sources, dst in TRANSITIONS.values() if dst for src in sources}


class WaiverLife(RuleBasedStateMachine):
    people: dict = {}
    waivers = Bundle("waivers")

    @initialize(
        target=waivers,
        who=st.sampled_from(REQUESTERS),
        body=st.sampled_from(BODIES),
        approved=st.booleans(),
    )
    def start(self, who, body, approved):
        # Each example runs in a savepoint that is rolled back, so examples do not see each other.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.now = NOW
        self.ended: dict[str, str] = {}
        # The machine's own account of who has a stake in what.
        self.requester: dict[str, str] = {}
        self.predecessor: dict[str, str | None] = {}
        self.control_owner: dict[str, str] = {}
        self.edits: dict[str, dict[str, int]] = {}  # ref -> person -> round the edit shapes
        self.account_owner = {"GLOBEX-002": None, "ACME-001": "mark"}
        self.customer: dict[str, str] = {}
        self.stake_when_given: dict[int, bool] = {}  # approval -> conflicted when given
        self.voided: set[int] = set()
        self.attested_with_stake: list[int] = []
        self.delegations: list[tuple[str, str, str, date, date]] = []  # from, to, role, days
        # One request to begin with, approved or waiting for its first decision.
        ref = self.create(body, True, who, "olga", "GLOBEX-002")
        if approved:
            self.approve_all_the_way(ref)
        return ref

    def teardown(self):
        # What is appended cannot be taken back: a wrong move or a broken chain at any step
        # is still there at the end, so these two are checked once, after the last step.
        try:
            self.every_transition_has_exactly_one_audit_entry()
            self.the_chain_verifies()
        finally:
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    def attempt(self, action):
        # A refusal is fine: the invariants check that it changed nothing wrongly.
        with contextlib.suppress(Denied, Invalid):
            action()

    @rule(
        target=waivers,
        body=st.sampled_from(BODIES),
        submit=st.booleans(),
        who=st.sampled_from(REQUESTERS),
        owner=st.sampled_from(CONTROL_OWNERS),
        customer=st.sampled_from(CUSTOMERS),
    )
    def create(self, body, submit, who, owner, customer):
        # The same request shape, starting four weeks after the (moving) clock.
        start, end = date.fromisoformat(body["start"]), date.fromisoformat(body["end"])
        new_start = self.now.date() + timedelta(days=28)
        dates = {"start": new_start.isoformat(), "end": (new_start + (end - start)).isoformat()}
        try:
            waiver = services.create(
                {**body, **dates, "submit": submit, "control_owner": owner, "customer": customer},
                self.people[who],
                now=self.now,
            )
        except (Denied, Invalid):
            return multiple()
        self.remember(waiver.reference, who, None, owner, customer)
        return waiver.reference

    def remember(self, ref, requester, predecessor, owner, customer):
        self.requester[ref], self.predecessor[ref] = requester, predecessor
        self.control_owner[ref], self.customer[ref] = owner, customer
        self.edits[ref] = {}

    def stake(self, ref: str, person: str) -> bool:
        """Whether `person` has a stake in `ref` now, by the machine's own account."""
        chain, earlier = [], self.predecessor[ref]
        while earlier:
            chain.append(self.requester[earlier])
            earlier = self.predecessor[earlier]
        current = Waiver.objects.get(reference=ref).round
        return (
            person in (self.requester[ref], *chain, self.control_owner[ref])
            or person == self.account_owner[self.customer[ref]]
            or self.edits[ref].get(person) == current
        )

    @rule(ref=waivers)
    def submit(self, ref):
        self.attempt(lambda: services.submit(ref, self.people[self.requester[ref]], now=self.now))

    @rule(ref=waivers, seats=st.integers(1, 900), by_admin=st.booleans())
    def edit(self, ref, seats, by_admin):
        who = "adam" if by_admin else self.requester[ref]
        under_review = Waiver.objects.get(reference=ref).status in UNDER_REVIEW
        edited = AuditEntry.objects.filter(action="waiver.edited", object_ref=ref)
        before = edited.count()
        with contextlib.suppress(Denied, Invalid):
            services.edit(ref, self.people[who], {"scope": {"seats": seats}}, now=self.now)
            waiver = Waiver.objects.get(reference=ref)
            if edited.count() > before:  # the same seats again changes nothing: no stake
                self.edits[ref][who] = waiver.round + (not under_review)

    @rule(ref=waivers, who=st.sampled_from(APPROVERS), checks=st.booleans())
    def approve_as_anyone(self, ref, who, checks):
        names = ["contract_allows_discount", "revenue_recognition"] if checks else []
        had_stake = self.stake(ref, who)
        # The stake of each person `who` may decide for, before the decision.
        stakes = {d[0]: self.stake(ref, d[0]) for d in self.delegations if d[1] == who}
        with contextlib.suppress(Denied, Invalid):
            services.decide(ref, self.people[who], "approve", checks=names, now=self.now)
            waiver = Waiver.objects.get(reference=ref)
            given = Approval.objects.select_related("on_behalf_of", "step").get(
                waiver=waiver, round=waiver.round, user=self.people[who])  # fmt: skip
            self.stake_when_given[given.pk] = had_stake
            assert not had_stake, f"{who} decided {ref} with a stake in it"
            if given.on_behalf_of is not None:
                event("decided as a delegate")  # --hypothesis-show-statistics counts them
                delegator = given.on_behalf_of.username
                self.stake_when_given[given.pk] = stakes[delegator]
                assert not stakes[delegator], (
                    f"{who} decided {ref} for {delegator}, who has a stake"
                )
                assert given.step.delegable, f"{who} decided an undelegable step for {delegator}"
                assert any(d[:2] == (delegator, who) and d[2] in ("", given.step.role)
                           and d[3] <= self.now.date() <= d[4] for d in self.delegations), (
                    f"{who} decided for {delegator} without a delegation in force")  # fmt: skip

    @rule(
        who=st.sampled_from(["mona", "mark", "dana", "fiona", "leo", "eva", "adam", "rita"]),
        to=st.sampled_from(["charlie", "sam", "olga", *APPROVERS, *REQUESTERS]),
        role=st.sampled_from(["", "", "sales_manager", "deal_desk", "executive", "finance"]),
        begins=st.integers(-3, 6),
        days=st.integers(0, 40),
    )
    def delegate(self, who, to, role, begins, days):
        """An approver hands their decisions to someone for a while (perhaps a requester, an
        account owner or an approver of another step)."""
        starts = self.now.date() + timedelta(days=begins)
        ends = starts + timedelta(days=days)
        with contextlib.suppress(Denied, Invalid):
            services.delegating.delegate(self.people[who], self.people[to], starts, ends,
                                         self.people[who], role, now=self.now)  # fmt: skip
            self.delegations.append((who, to, role, starts, ends))

    @rule(ref=waivers)
    def approve_all_the_way(self, ref):
        """Whoever may decide approves, step after step (the checks at the step that records
        them), as far as the route goes."""
        for _step in range(8):
            waiver = services.get(ref)
            who = next((p for p in APPROVERS if services.may_act(waiver, self.people[p]) is None),
                       None)  # fmt: skip
            if who is None:
                return
            try:
                services.decide(ref, self.people[who], "approve", now=self.now)
            except Invalid:  # the checks are this step's to record
                self.approve_as_anyone(ref, who, checks=True)
            except Denied:
                return
            else:
                decided = Waiver.objects.get(reference=ref)
                given = Approval.objects.get(waiver=decided, round=decided.round,
                                             user=self.people[who])  # fmt: skip
                self.stake_when_given[given.pk] = self.stake(ref, who)

    @rule(ref=waivers, to=st.sampled_from(["charlie", "sam", "olga", "rita", "mark", "dana"]),
          nth=st.integers(0, 3), checks=st.booleans())  # fmt: skip
    def an_approver_of_the_open_step_goes_away(self, ref, to, nth, checks):
        """One who could decide the open step hands their decisions to someone (perhaps its
        requester, an account owner or an approver of another step), who then tries."""
        step = Waiver.objects.get(reference=ref).current_route().filter(status="pending").first()
        holders = [p for p in APPROVERS if step and step.role in directory.roles_of(self.people[p])]
        if holders:
            self.delegate(holders[nth % len(holders)], to, "", 0, 7)
            self.approve_as_a_delegate(ref, checks)

    @rule(ref=waivers, checks=st.booleans())
    def approve_as_a_delegate(self, ref, checks):
        """Someone handed an approver's decisions decides, if the services let them."""
        today, waiver = self.now.date(), services.get(ref)
        handed = [d[1] for d in self.delegations if d[3] <= today <= d[4]]
        who = next((p for p in handed if services.may_act(waiver, self.people[p], today) is None),
                   None)  # fmt: skip
        if who is not None:
            self.approve_as_anyone(ref, who, checks)

    @rule(ref=waivers, data=st.data())
    def approve_as_a_stakeholder(self, ref, data):
        """Those with a stake try their luck: the requesters of the chain, the control owner,
        the account owner, the editors of the round."""
        earlier, chain = self.predecessor[ref], []
        while earlier:
            chain.append(self.requester[earlier])
            earlier = self.predecessor[earlier]
        owner = self.account_owner[self.customer[ref]]
        people = [self.requester[ref], *chain, *chain, self.control_owner[ref], *self.edits[ref]]
        people += [owner] if owner else []
        self.approve_as_anyone(ref, data.draw(st.sampled_from(people)), checks=False)

    @rule(ref=waivers, who=st.sampled_from(APPROVERS), score=st.integers(1, 5))
    def override(self, ref, who, score):
        had_stake = self.stake(ref, who)
        with contextlib.suppress(Denied, Invalid):
            services.override_risk(ref, self.people[who], "financial", score, "x", now=self.now)
            assert not had_stake, f"{who} shaped {ref} with a stake in it"

    @rule(target=waivers, ref=waivers, by_admin=st.booleans(), renewal=st.booleans())
    def renew_or_amend(self, ref, by_admin, renewal):
        who = "adam" if by_admin else self.requester[ref]
        try:
            if renewal:
                end = Waiver.objects.get(reference=ref).end + timedelta(days=30)
                body = {"end": end.isoformat(), "justification": FRESH, "submit": True}
                new = services.renew(ref, self.people[who], body, now=self.now)
            else:
                new = services.amend(ref, self.people[who], {"scope": {"seats": 7}, "submit": True},
                                     now=self.now)  # fmt: skip
        except (Denied, Invalid):
            return multiple()
        self.remember(new.reference, who, ref, self.control_owner[ref], self.customer[ref])
        return new.reference

    @rule(target=waivers, ref=waivers, renewal=st.booleans())
    def an_admin_continues_it_and_its_requester_decides(self, ref, renewal):
        """The walk-around: someone else files the renewal or amendment, and the original
        requester, who approves for their tier, decides it."""
        new = self.renew_or_amend(ref, True, renewal)
        if isinstance(new, str):
            self.approve_as_anyone(new, self.requester[ref], checks=False)
        return new

    @rule(customer=st.sampled_from(CUSTOMERS), owner=st.sampled_from([None, *APPROVERS[:6]]))
    def change_account_owner(self, customer, owner):
        # The new owner's approvals this round on the customer's open requests no longer count.
        for waiver in Waiver.objects.filter(customer__external_id=customer,
                                            status__in=UNDER_REVIEW):  # fmt: skip
            self.voided.update(
                Approval.objects.filter(
                    waiver=waiver, round=waiver.round, user__username=owner
                ).values_list("pk", flat=True)
            )
        directory.update_customer(customer, {"account_owner": owner or ""})
        self.account_owner[customer] = owner
        assert not Approval.objects.filter(pk__in=self.voided).exists()

    @rule(ref=waivers)
    def make_an_approver_the_account_owner(self, ref):
        waiver = Waiver.objects.get(reference=ref)
        given = Approval.objects.filter(waiver=waiver, round=waiver.round).first()
        if waiver.status in UNDER_REVIEW and given is not None:
            self.change_account_owner(self.customer[ref], given.user.username)

    @rule(who=st.sampled_from(["olga", "mona", "adam", "rita", "audrey"]))
    def attest(self, who):
        review = Review.objects.filter(outcome="").select_related("waiver").first()
        if review is None:
            return
        ref = review.waiver.reference
        with contextlib.suppress(Denied, Invalid, NotFound):
            reviews.attest(review.pk, self.people[who], "still_needed", "fine", now=self.now)
            if who != self.control_owner[ref] or who == self.requester[ref]:
                self.attested_with_stake.append(review.pk)

    @rule(ref=waivers, checks=st.booleans())
    def approve_as_someone_who_may(self, ref, checks):
        waiver = services.get(ref)
        who = next((p for p in APPROVERS if services.may_act(waiver, self.people[p]) is None), None)
        if who is not None:
            self.approve_as_anyone(ref, who, checks)

    @rule(
        ref=waivers,
        who=st.sampled_from(APPROVERS),
        decision=st.sampled_from(["reject", "request_changes"]),
    )
    def refuse(self, ref, who, decision):
        self.attempt(lambda: services.decide(ref, self.people[who], decision, "no", now=self.now))

    @rule(ref=waivers, who=st.sampled_from(["rita", "mona"]))
    def withdraw(self, ref, who):
        self.attempt(lambda: services.withdraw(ref, self.people[who], now=self.now))

    @rule(ref=waivers, who=st.sampled_from(["olga", "rita"]))
    def terminate(self, ref, who):
        self.attempt(lambda: services.terminate(ref, self.people[who], "done", now=self.now))

    @rule(days=st.integers(1, 200))
    def advance_clock(self, days):
        self.now += timedelta(days=days)
        services.sweep(now=self.now)
        services.chase(now=self.now)
        reviews.run(self.now)

    @invariant()
    def nothing_in_force_was_decided_by_anyone_with_a_stake(self):
        in_force = Approval.objects.filter(waiver__status__in=IN_FORCE, round=F("waiver__round"))
        for ref, pk in in_force.values_list("waiver__reference", "pk"):
            assert self.stake_when_given.get(pk) is False, (ref, pk)
            assert pk not in self.voided, (ref, pk)
        assert not self.attested_with_stake

    @invariant()
    def nobody_approves_their_own_request(self):
        assert not Approval.objects.filter(user=F("waiver__requester")).exists()
        assert not Approval.objects.filter(on_behalf_of=F("waiver__requester")).exists()

    @invariant()
    def one_person_fills_one_step_of_a_route_through_a_delegate_too(self):
        # Twice as themselves, or twice through delegates, the database refuses; here: as
        # themselves and through a delegate in one round.
        for_others = set(Approval.objects.filter(on_behalf_of__isnull=False)
                         .values_list("waiver", "round", "on_behalf_of"))  # fmt: skip
        if for_others:
            themselves = Approval.objects.filter(waiver__in={w for w, _r, _p in for_others})
            assert not for_others & set(themselves.values_list("waiver", "round", "user"))

    @invariant()
    def no_step_has_more_approvals_than_it_needs(self):
        over = RouteStep.objects.annotate(
            n=Count("approvals", filter=Q(approvals__decision="approve"))
        ).filter(n__gt=F("required"))
        assert not over.exists()

    @invariant()
    def terminal_states_never_change(self):
        ended = Waiver.objects.filter(reference__in=self.ended)
        assert dict(ended.values_list("reference", "status")) == self.ended
        self.ended.update(
            Waiver.objects.filter(status__in=TERMINAL).values_list("reference", "status")
        )

    def every_transition_has_exactly_one_audit_entry(self):
        # Every waiver's entries in the order of the trail, read in one query.
        moves: dict[str, list[dict]] = {}
        entries = AuditEntry.objects.filter(object_type="waiver").order_by("seq")
        for ref, payload in entries.values_list("object_ref", "payload"):
            if '"to":' in payload:  # refusals and attachments change no state
                moves.setdefault(ref, []).append(json.loads(payload))
        for ref, status in Waiver.objects.values_list("reference", "status"):
            current = None
            for entry in moves.get(ref, []):
                if "to" not in entry:
                    continue
                assert entry["from"] == current, (ref, entry)
                assert (
                    current is None
                    or entry["to"] == current
                    or ((current, entry["to"]) in ALLOWED_MOVES)
                ), (ref, entry)
                current = entry["to"]
            assert current == status, ref

    def the_chain_verifies(self):
        assert audit.verify().ok


def test_the_rules_hold_whatever_people_do(world):
    for name, roles in EXTRA_ROLES.items():
        directory.add_user(name, roles)
    WaiverLife.people = {name: type(user).objects.get(pk=user.pk) for name, user in world.items()}
    run_state_machine_as_test(
        WaiverLife,
        settings=settings(
            max_examples=80,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
