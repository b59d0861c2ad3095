"""Policy replay (T2): a draft policy evaluated over past requests, side by side with what
happened to them: eligibility, risk level and route, and what that does to approver load and
to cycle time. Each request is evaluated as it was on the day it was submitted (its
customer's history then, its evidence, its reviewers' risk overrides)."""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Prefetch

from waiverdesk.core.evaluation import Override, RequestFacts, evaluate
from waiverdesk.core.lifecycle import Status
from waiverdesk.core.policy import Policy
from waiverdesk.waivers import services
from waiverdesk.waivers.models import RouteStep, Waiver

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
    history = _histories(rows)
    tier_hours = {tier: q["p50"] or 0.0 for tier, q in metrics.quantiles(
        RouteStep.objects.filter(waiver__in=rows, closed_at__isnull=False), "opened_at",
        "closed_at", by="tier").items()}  # fmt: skip
    result = Replay(since)
    load_before, load_after = Counter(), Counter()
    cycles_before, cycles_after = [], []
    steps = Prefetch("steps", queryset=RouteStep.objects.order_by("round", "position"))
    waivers = (
        rows.select_related("customer__account_owner", "control_owner")
        .prefetch_related("products", "attachments", steps)
        .order_by("submitted_at", "pk")
    )
    for waiver in waivers.iterator(chunk_size=BATCH):
        result.requests += 1
        before = _happened(waiver)
        evaluation = evaluate(draft, _facts(waiver, history), waiver.submitted_at.date(),
                              _overrides(waiver))  # fmt: skip
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


def _happened(waiver: Waiver) -> Outcome:
    """What the request met: it was eligible (it was submitted), its risk level, and the
    tiers of its latest route."""
    latest = [s for s in waiver.steps.all() if s.round == waiver.round]
    return Outcome(True, waiver.risk.get("overall", ""), [s.tier for s in latest])


def _overrides(waiver: Waiver) -> dict[str, Override]:
    return {d: Override(o["score"], o["rationale"], o["by"])
            for d, o in waiver.risk_overrides.items()}  # fmt: skip


def _histories(rows) -> dict[int, list[tuple[datetime, int]]]:
    """Each customer's requests as (submitted, id), withdrawn ones aside, sorted: for the
    count of their exceptions in the year before each request (of one instant, those filed
    before it)."""
    customers = rows.values("customer")
    earliest = rows.order_by("submitted_at").values_list("submitted_at", flat=True).first()
    if earliest is None:
        return {}
    times = defaultdict(list)
    year_before = earliest - timedelta(days=365)
    for customer, at, pk in (
        Waiver.objects.filter(customer__in=customers, submitted_at__gte=year_before)
        .exclude(status=Status.WITHDRAWN)
        .values_list("customer", "submitted_at", "pk")
    ):
        times[customer].append((at, pk))
    for list_ in times.values():
        list_.sort()
    return times


def _facts(waiver: Waiver, history: dict[int, list[tuple[datetime, int]]]) -> RequestFacts:
    times = history.get(waiver.customer_id, [])
    at = waiver.submitted_at
    earlier = bisect.bisect_left(times, (at, waiver.pk)) - bisect.bisect_left(
        times, (at - timedelta(days=365), 0)
    )
    kinds = frozenset(a.kind for a in waiver.attachments.all())
    return services.facts_of(waiver, waiver.products.all(), kinds, earlier)
