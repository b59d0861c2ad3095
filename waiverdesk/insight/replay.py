"""Policy replay (T2): a draft policy evaluated over past requests, side by side with what
happened to them: eligibility, risk level and route, and what that does to approver load and
to cycle time. Each request is evaluated as it was on the day it was submitted (its
customer's history then, its evidence, its reviewers' risk overrides)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from waiverdesk.core.evaluation import EvaluationError, ProductFacts, evaluate
from waiverdesk.core.lifecycle import Status
from waiverdesk.core.policy import Policy
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Attachment, RouteStep, Waiver

from . import metrics

BATCH = 2000


@dataclass
class Outcome:
    eligible: bool
    level: str
    route: list[str]
    problems: list[str] = field(default_factory=list)


@dataclass
class Change:
    reference: str
    customer: str
    type: str
    submitted_at: datetime
    before: Outcome
    after: Outcome
    what: list[str]  # "eligibility", "risk", "route"


@dataclass
class Replay:
    since: datetime
    requests: int = 0
    changes: list[Change] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # of what changed
    load: dict[str, tuple[int, int]] = field(default_factory=dict)  # tier: steps before, after
    cycle_hours: tuple[float | None, float | None] = (None, None)  # estimated medians


def replay(draft: Policy, since: datetime, until: datetime | None = None) -> Replay:
    """Evaluate `draft` over the requests submitted since `since` (to `until`)."""
    rows = Waiver.objects.filter(submitted_at__gte=since).exclude(status=Status.DRAFT)
    if until:
        rows = rows.filter(submitted_at__lt=until)
    tier_hours = {tier: q["p50"] or 0.0 for tier, q in metrics.quantiles(
        RouteStep.objects.filter(waiver__in=rows, closed_at__isnull=False), "opened_at",
        "closed_at", by="tier").items()}  # fmt: skip
    result = Replay(since)
    load_before, load_after = Counter(), Counter()
    cycles_before, cycles_after = [], []
    for waiver, facts, route in _requests(rows):
        result.requests += 1
        before = Outcome(True, waiver.risk.get("overall", ""), route)
        try:
            evaluation = evaluate(
                draft, facts, waiver.submitted_at.date(), services.overrides_of(waiver)
            )
        except EvaluationError as failed:  # the draft would refuse this request: say where
            after = Outcome(False, before.level, [], [f"the draft's condition {failed}"])
        else:
            after = Outcome(evaluation.eligible, evaluation.risk.overall,
                            [s.tier for s in evaluation.route],
                            [p.message for p in evaluation.problems])  # fmt: skip
        load_before.update(before.route)
        load_after.update(after.route if after.eligible else [])
        cycles_before.append(sum(tier_hours.get(t, 0.0) for t in before.route))
        if after.eligible:
            cycles_after.append(sum(tier_hours.get(t, 0.0) for t in after.route))
        differs = {
            "eligibility": before.eligible != after.eligible,
            "risk": before.level != after.level,
            "route": after.eligible and before.route != after.route,
        }
        if what := [name for name, changed in differs.items() if changed]:
            result.counts.update(what)
            result.changes.append(
                Change(
                    waiver.reference,
                    waiver.customer.external_id,
                    waiver.type,
                    waiver.submitted_at,
                    before,
                    after,
                    what,
                )
            )
    named = [t.name for t in draft.tiers]
    tiers = named + sorted(set(load_before) - set(named))
    result.load = {t: (load_before[t], load_after[t]) for t in tiers}
    result.cycle_hours = (_median(cycles_before), _median(cycles_after))
    return result


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _requests(rows):
    """Each request with its facts as they stood when it was submitted, and the tiers of its
    latest route; a chunk at a time, its related rows read as plain values."""
    ids = list(rows.order_by("submitted_at", "pk").values_list("pk", flat=True))
    for first in range(0, len(ids), BATCH):
        chunk = ids[first : first + BATCH]
        products, kinds, routes = defaultdict(list), defaultdict(set), defaultdict(list)
        for waiver_id, *product in Waiver.products.through.objects.filter(
            waiver_id__in=chunk
        ).values_list("waiver_id", "product__code", "product__family", "product__risk_class"):
            products[waiver_id].append(ProductFacts(*product))
        for waiver_id, kind in Attachment.objects.filter(waiver_id__in=chunk).values_list(
            "waiver_id", "kind"
        ):
            kinds[waiver_id].add(kind)
        for waiver_id, tier in (
            RouteStep.objects.filter(waiver_id__in=chunk, round=F("waiver__round"))
            .order_by("position")
            .values_list("waiver_id", "tier")
        ):
            routes[waiver_id].append(tier)
        waivers = (
            Waiver.objects.filter(pk__in=chunk)
            .select_related("customer__account_owner", "control_owner")
            .annotate(history=_history())
            .order_by("submitted_at", "pk")
        )
        for w in waivers:
            facts = services.facts_of(w, products[w.pk], frozenset(kinds[w.pk]), w.history)
            yield w, facts, routes[w.pk]


def _history():
    """The customer's other requests (withdrawn ones aside) in the year before this one was
    submitted: those filed before it, as it saw them then. Counted from the index alone."""
    at = OuterRef("submitted_at")
    counted = (
        Waiver.objects.filter(
            customer=OuterRef("customer"),
            submitted_at__gte=at - timedelta(days=365),
            submitted_at__lte=at,
        )
        .filter(Q(submitted_at__lt=at) | Q(pk__lt=OuterRef("pk")))
        .exclude(status=Status.WITHDRAWN)
        .order_by()
        .values("customer")
    )
    return Coalesce(Subquery(counted.annotate(n=Count("pk")).values("n")), 0)
