"""Does an exception deliver value, or leak? Its use against what it allows, month by month,
and the findings: use beyond the granted seats, use after its end (with nothing else in
force), use of a product it does not cover, and use below the outcome it promised.

Usage of the metric `seats` is compared with the seats the exception grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max
from django.db.models.functions import TruncMonth

from waiverdesk.audit import services as audit
from waiverdesk.core.lifecycle import IN_FORCE
from waiverdesk.entitlements.models import EntitlementChange
from waiverdesk.notifications import services as notify
from waiverdesk.waivers.models import Waiver

from .models import Flag, UsageRecord

METRIC = "seats"
AFTER_END = timedelta(days=90)  # how long after its end use still points at an exception


@dataclass
class Utilization:
    allowed: float | None
    peak: float | None
    months: list[dict[str, Any]] = field(default_factory=list)
    findings: list[tuple[str, str]] = field(default_factory=list)


def of(waiver: Waiver, today: date) -> Utilization:
    """The use of `waiver`'s products over its period, and what is wrong with it (SQL
    aggregates over the customer's usage records)."""
    covered = list(waiver.products.all())
    allowed = _granted_seats(waiver)
    usage = UsageRecord.objects.filter(customer_id=waiver.customer_id, metric=METRIC)
    during = usage.filter(period_start__lte=waiver.end, period_end__gte=waiver.start)
    months = list(
        during.filter(product__in=covered)
        .annotate(month=TruncMonth("period_start"))
        .values("month")
        .annotate(peak=Max("quantity"))
        .order_by("month")
    )
    peak = max((m["peak"] for m in months), default=None)
    result = Utilization(
        allowed,
        peak,
        [{"month": m["month"].strftime("%Y-%m"), "peak": m["peak"]} for m in months],
    )
    if allowed is not None and peak is not None and peak > allowed:
        result.findings.append(("over_scope", f"peak use {peak:g} seats, {allowed:g} granted"))
    if today > waiver.end and not _other_cover(waiver, covered):
        after = usage.filter(
            product__in=covered,
            period_start__gt=waiver.end,
            period_start__lte=waiver.end + AFTER_END,
            quantity__gt=0,
        ).aggregate(n=Count("id"), peak=Max("quantity"))
        if after["n"]:
            result.findings.append(
                ("after_end", f"{after['n']} records after {waiver.end}, up to {after['peak']:g}")
            )
    families = {p.family for p in covered}
    elsewhere = (
        during.filter(product__family__in=families, quantity__gt=0)
        .exclude(product__in=covered)
        .values_list("product__code", flat=True)
        .distinct()
    )
    if codes := sorted(elsewhere):
        result.findings.append(("uncovered_product", f"use of {', '.join(codes)} in the period"))
    target = _promised(waiver)
    half_way = waiver.start + (waiver.end - waiver.start) / 2
    if target is not None and today >= half_way and (peak or 0) < target:
        result.findings.append(("under_use", f"peak use {peak or 0:g} seats, {target:g} promised"))
    return result


def scan(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Check every exception in force or recently ended; record each new finding once and
    tell the control owner."""
    today = now.date()
    recent = Waiver.objects.filter(
        status__in=[*IN_FORCE, "expired", "terminated", "superseded"],
        end__gte=today - AFTER_END,
        start__lte=today,
    ).select_related("customer", "control_owner")
    done = []
    for waiver in recent.prefetch_related("products"):
        for kind, detail in of(waiver, today).findings:
            if dry_run or _flag(waiver, kind, detail, now):
                done.append((waiver.reference, f"{kind}: {detail}"))
    return done


def flagged():
    """Exceptions with findings, newest first, for review."""
    return Flag.objects.select_related("waiver__customer").order_by("-found_at", "id")


def _flag(waiver: Waiver, kind: str, detail: str, now: datetime) -> bool:
    try:
        with transaction.atomic():
            Flag.objects.create(waiver=waiver, kind=kind, detail=detail, found_at=now)
            data = {"finding": kind, "detail": detail}
            audit.append("system", "waiver.flagged", waiver, data, at=now)
            notify.publish("waiver.flagged", waiver, data, [waiver.control_owner], now)
    except IntegrityError:
        return False  # found before
    return True


def _granted_seats(waiver: Waiver) -> float | None:
    seats = (
        EntitlementChange.objects.filter(waiver=waiver, change="grant", item="seats")
        .values_list("value", flat=True)
        .first()
    )
    if seats is None:  # not in effect (yet): what the request asks for
        seats = waiver.scope.get("seats")
    return float(seats) if isinstance(seats, int | float) else None


def _promised(waiver: Waiver) -> float | None:
    for outcome in waiver.outcomes:
        target = outcome.get("target")
        if isinstance(target, int | float):
            return float(target)
    return None


def _other_cover(waiver: Waiver, covered: list) -> bool:
    """Whether another exception in force covers the same customer and products."""
    return (
        Waiver.objects.filter(
            customer_id=waiver.customer_id, status__in=IN_FORCE, products__in=covered
        )
        .exclude(pk=waiver.pk)
        .exists()
    )
