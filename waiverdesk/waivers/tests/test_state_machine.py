"""A hypothesis state machine over the services: whatever people do, in whatever order,
the rules hold."""

import contextlib
import json
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Count, F, Q
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.core.lifecycle import TERMINAL, TRANSITIONS
from waiverdesk.testing import NOW, big_discount_body, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Approval, RouteStep, Waiver

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
]
ALLOWED_MOVES = {(src, dst) for sources, dst in TRANSITIONS.values() if dst for src in sources}


class WaiverLife(RuleBasedStateMachine):
    people: dict = {}
    waivers = Bundle("waivers")

    @initialize()
    def start(self):
        # Each example runs in a savepoint that is rolled back, so examples do not see each other.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.now = NOW
        self.ended: dict[str, str] = {}

    def teardown(self):
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    def attempt(self, action):
        # A refusal is fine: the invariants check that it changed nothing wrongly.
        with contextlib.suppress(Denied, Invalid):
            action()

    @rule(target=waivers, body=st.sampled_from(BODIES), submit=st.booleans())
    def create(self, body, submit):
        # The same request shape, starting four weeks after the (moving) clock.
        start, end = date.fromisoformat(body["start"]), date.fromisoformat(body["end"])
        new_start = self.now.date() + timedelta(days=28)
        dates = {"start": new_start.isoformat(), "end": (new_start + (end - start)).isoformat()}
        waiver = services.create(
            {**body, **dates, "submit": submit}, self.people["rita"], now=self.now
        )
        return waiver.reference

    @rule(ref=waivers)
    def submit(self, ref):
        self.attempt(lambda: services.submit(ref, self.people["rita"], now=self.now))

    @rule(ref=waivers, seats=st.integers(1, 900))
    def edit(self, ref, seats):
        self.attempt(
            lambda: services.edit(
                ref, self.people["rita"], {"scope": {"seats": seats}}, now=self.now
            )
        )

    @rule(ref=waivers, who=st.sampled_from(APPROVERS), checks=st.booleans())
    def approve_as_anyone(self, ref, who, checks):
        names = ["contract_allows_discount", "revenue_recognition"] if checks else []
        self.attempt(
            lambda: services.decide(ref, self.people[who], "approve", checks=names, now=self.now)
        )

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

    @invariant()
    def nobody_approves_their_own_request(self):
        assert not Approval.objects.filter(user=F("waiver__requester")).exists()

    @invariant()
    def no_step_has_more_approvals_than_it_needs(self):
        over = RouteStep.objects.annotate(
            n=Count("approvals", filter=Q(approvals__decision="approve"))
        ).filter(n__gt=F("required"))
        assert not over.exists()

    @invariant()
    def terminal_states_never_change(self):
        for ref, status in self.ended.items():
            assert Waiver.objects.get(reference=ref).status == status
        self.ended.update(
            Waiver.objects.filter(status__in=TERMINAL).values_list("reference", "status")
        )

    @invariant()
    def every_transition_has_exactly_one_audit_entry(self):
        for ref, status in Waiver.objects.values_list("reference", "status"):
            current = None
            entries = AuditEntry.objects.filter(object_type="waiver", object_ref=ref)
            for payload in entries.values_list("payload", flat=True):
                entry = json.loads(payload)
                if "to" not in entry:
                    continue  # refusals and attachments change no state
                assert entry["from"] == current, (ref, entry)
                assert (
                    current is None
                    or entry["to"] == current
                    or ((current, entry["to"]) in ALLOWED_MOVES)
                ), (ref, entry)
                current = entry["to"]
            assert current == status, ref

    @invariant()
    def the_chain_verifies(self):
        assert audit.verify().ok


def test_the_rules_hold_whatever_people_do(world):
    WaiverLife.people = world
    run_state_machine_as_test(
        WaiverLife,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
