"""The figures the pages show: what each request waits on, the inbox, the dashboard."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db.models import Count, F, Min, Q

from waiverdesk.core.lifecycle import UNDER_REVIEW
from waiverdesk.directory.services import roles_of
from waiverdesk.usage import utilization

from . import access, services
from .models import RouteStep, Task, Waiver


def with_waiting_on(waivers, roles=frozenset()) -> list[tuple[Waiver, RouteStep | None]]:
    """Each waiver with the step its current round waits on (None when none is pending):
    of the steps open at once, the first that `roles` may decide, else the first."""
    waivers = list(waivers)
    rounds = {w.pk: w.round for w in waivers if w.status in UNDER_REVIEW}
    steps = RouteStep.objects.filter(waiver_id__in=rounds, status=RouteStep.State.PENDING)
    pending: dict[int, RouteStep] = {}
    for s in sorted(steps, key=lambda s: (not services.step_roles(s) & roles, s.position)):
        if s.round == rounds[s.waiver_id]:
            pending.setdefault(s.waiver_id, s)
    return [(w, pending.get(w.pk)) for w in waivers]


def board(user: User, today, page: int = 1) -> tuple[list[dict[str, Any]], Any]:
    """One page (100) of open implementation tasks, soonest due first: the user's own work
    (everyone's, for admins and auditors), each with whether the user may mark it done; and
    the page, for its count and its neighbours."""
    tasks = Task.objects.filter(status=Task.State.OPEN).select_related("waiver__customer", "owner")
    roles = roles_of(user)
    if not roles & access.READ_ALL_ROLES:
        tasks = tasks.filter(Q(owner=user) | Q(owner__isnull=True, role__in=roles))
    shown = Paginator(tasks.order_by("due", "id"), 100).get_page(page)
    rows = [
        {"task": t, "overdue": t.due < today, "may_do": services.may_do(t, user)} for t in shown
    ]
    return rows, shown


def bars(counts: dict[str, int], in_order: bool = False) -> list[dict[str, Any]]:
    """Rows of a bar chart, largest first (or in the given order, for time): label, value,
    and its width as a share of the largest."""
    top = max(counts.values(), default=0) or 1
    rows = counts.items() if in_order else sorted(counts.items(), key=lambda kv: -kv[1])
    return [{"label": k, "value": v, "pct": round(100 * v / top)} for k, v in rows]


def usage_bars(usage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A month-by-month chart of peak use, scaled to the larger of the peak and the grant."""
    if not usage or not usage["months"]:
        return []
    allowed = usage["allowed"]
    top = max([m["peak"] for m in usage["months"]] + [allowed or 0]) or 1
    return [
        {"label": m["month"], "value": m["peak"], "pct": round(100 * m["peak"] / top),
         "over": allowed is not None and m["peak"] > allowed}
        for m in usage["months"]
    ]  # fmt: skip


FLAGS_SHOWN = 50


def dashboard(now: datetime, type_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Requests by status and type, pending steps by tier with their age, time to decision."""
    by_status = dict(Waiver.objects.values_list("status").annotate(n=Count("id")))
    by_type = dict(Waiver.objects.values_list("type").annotate(n=Count("id")))
    pending = (
        RouteStep.objects.filter(
            status=RouteStep.State.PENDING,
            round=F("waiver__round"),
            waiver__status__in=UNDER_REVIEW,
        )
        .values("tier")
        .annotate(n=Count("id"), oldest=Min("opened_at"))
    )
    tiers = [
        {
            "tier": p["tier"],
            "count": p["n"],
            "oldest_hours": int((now - p["oldest"]).total_seconds() // 3600),
        }
        for p in pending
    ]
    decided = Waiver.objects.filter(
        decided_at__gte=now - timedelta(days=365), submitted_at__isnull=False
    ).values_list("submitted_at", "decided_at")
    hours = [(d - s).total_seconds() / 3600 for s, d in decided]
    return {
        "total": sum(by_status.values()),
        "charts": [
            (
                "Requests by status",
                bars({k.replace("_", " ").capitalize(): v for k, v in by_status.items()}),
            ),
            (
                "Requests by type",
                bars({(type_labels or {}).get(k, k): v for k, v in by_type.items()}),
            ),
            ("Steps pending by tier", bars({t["tier"]: t["count"] for t in tiers})),
        ],
        "pending_tiers": sorted(tiers, key=lambda t: -t["oldest_hours"]),
        "flags": list(utilization.flagged()[:FLAGS_SHOWN]),
        "flag_count": utilization.flagged().count(),
        "decided": len(hours),
        "median_hours": round(statistics.median(hours), 1) if hours else None,
    }
