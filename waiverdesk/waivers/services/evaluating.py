"""The facts a policy sees of a waiver, and its evaluation (saved or simulated)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from waiverdesk import clock
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.evaluation import (
    Evaluation,
    EvaluationError,
    Override,
    ProductFacts,
    RequestFacts,
    evaluate,
)
from waiverdesk.core.lifecycle import Status
from waiverdesk.core.policy import Policy
from waiverdesk.directory import rates
from waiverdesk.policies import services as policies

from .. import intake
from ..models import Waiver


def facts(
    waiver: Waiver, now: datetime, products: list | None = None, kinds: frozenset[str] = frozenset()
) -> RequestFacts:
    """The facts the policy sees for `waiver`; an unsaved one names its `products` and the
    `kinds` of evidence it comes with."""
    if products is None:
        products = list(waiver.products.all())
    if waiver.customer.pk is None:  # an unknown customer, named in a refused body
        return facts_of(waiver, products, kinds, 0)
    since = now - timedelta(days=365)
    history = waiver.customer.waivers.filter(submitted_at__gte=since).exclude(
        status=Status.WITHDRAWN
    )
    if waiver.pk:
        history = history.exclude(pk=waiver.pk)
        kinds = frozenset(waiver.attachments.values_list("kind", flat=True))
    return facts_of(waiver, products, kinds, history.count())


def read_with_policy(data: Any, now: datetime, version=None) -> intake.Resolved:
    """`intake.read(data)`; when it refuses the body, the policy's problems with what of the
    body is sound are told too, each at a field the body's problems do not already name."""
    try:
        return intake.read(data)
    except Invalid as invalid:
        sound = intake.partial(data)
        if sound is None:
            raise
        policy = policies.compiled(version or policies.active_version())
        unsaved = Waiver(**sound.fields())
        try:
            price(unsaved, policy, now.date())
            evaluation = evaluate_waiver(unsaved, policy, now, sound.products)
        except Invalid:  # no rate, or a failing condition: the body's problems are enough
            raise invalid from None
        named = {p.field.split("[")[0] for p in invalid.problems}

        def new(field: str) -> bool:
            head = field.split("[")[0]
            return not any(head == n or head.startswith(f"{n}.") or n.startswith(f"{head}.")
                           for n in named)  # fmt: skip

        more = [p for p in evaluation.problems if new(p.field) and p.field != "eligibility"]
        raise Invalid(invalid.problems + more) from None


def facts_of(waiver: Waiver, products, kinds: frozenset[str], history: int) -> RequestFacts:
    """The facts of `waiver` with its products, evidence kinds and the count of its
    customer's other exceptions in the year, read elsewhere."""
    customer, owner = waiver.customer, waiver.control_owner
    return RequestFacts(
        type=waiver.type,
        customer=customer.external_id,
        products=tuple(ProductFacts(p.code, p.family, p.risk_class) for p in products),
        license_type=waiver.license_type,
        region=waiver.region,
        start=waiver.start,
        end=waiver.end,
        scope=waiver.scope,
        financials=waiver.financials,
        money=waiver.money,
        justification=waiver.justification,
        evidence=waiver.evidence,
        attachment_kinds=kinds,
        outcomes=tuple(waiver.outcomes),
        control_owner=owner.username if owner else "",
        account_owner=customer.account_owner.username if customer.account_owner else "",
        renewal_count=waiver.renewal_count,
        customer_exceptions_last_365_days=history,
        kind=waiver.kind,
    )


def evaluate_waiver(
    waiver: Waiver, policy: Policy, now: datetime, products=None, kinds=frozenset()
) -> Evaluation:
    """Evaluate a waiver (saved, or unsaved with its `products` and evidence `kinds`) with its
    risk overrides; a condition that fails on it refuses the request (PolicyFailed)."""
    request = facts(waiver, now, products, kinds)
    try:
        return evaluate(policy, request, now.date(), overrides_of(waiver))
    except EvaluationError as failed:
        raise PolicyFailed(policy.digest, failed.path, failed.detail) from None


class PolicyFailed(Invalid):
    """A published policy's condition failed on a request: the request is refused at the
    policy's place, and the policy admins are told (`policy_failures_reported`)."""

    def __init__(self, digest: str, place: str, detail: str):
        self.digest, self.place, self.detail = digest, place, detail
        # What went wrong inside the condition is for the policy admins, not the requester.
        message = (
            f"the policy's condition {place} cannot be applied to this request; "
            "nothing was saved, and the policy admins have been told"
        )
        super().__init__([Problem("policy", "policy_failed", message)])


def policy_failures_reported(fn):
    """Tell the policy admins, once per policy place, when `fn` meets a failing condition."""

    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PolicyFailed as failed:
            policies.report_failure(failed.digest, failed.place, failed.detail)
            raise

    return inner


def price(waiver: Waiver, policy: Policy, day: date) -> None:
    """Record the waiver's figures in the policy's base currency at the rates in force on
    `day` (Invalid at financials.currency when there is none)."""
    waiver.money = rates.to_base(waiver.financials, policy.document.base_currency, day)
    waiver.concession_base = waiver.money.get("concession_base")


def overrides_of(waiver: Waiver) -> dict[str, Override]:
    """The reviewers' risk overrides of a waiver, as the evaluation takes them."""
    return {
        d: Override(o["score"], o["rationale"], o["by"]) for d, o in waiver.risk_overrides.items()
    }


@dataclass
class Simulation:
    policy_version: int
    evaluation: Evaluation


@policy_failures_reported
def simulate(
    data: dict[str, Any], now: datetime | None = None, kinds: frozenset[str] = frozenset()
) -> Simulation:
    """Evaluate a request body (with evidence files of `kinds`) against the active policy
    without saving anything."""
    now = now or clock.now()
    version = policies.active_version()
    resolved = read_with_policy(data, now, version)
    unsaved = Waiver(**resolved.fields())
    policy = policies.compiled(version)
    price(unsaved, policy, now.date())
    evaluation = evaluate_waiver(unsaved, policy, now, resolved.products, kinds)
    return Simulation(version.number, evaluation)


def store_evaluation(waiver: Waiver, evaluation: Evaluation) -> None:
    waiver.risk = {
        **evaluation.risk.as_dict(),
        "rules": {d: s.rule for d, s in evaluation.risk.scores.items()},
    }
    waiver.triggers = [
        {"name": t.name, "flag": t.flag, "add_tiers": list(t.add_tiers)}
        for t in evaluation.triggers
    ]
