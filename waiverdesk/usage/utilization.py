"""Does an exception deliver value, or leak? Its use against what it allows, month by month,
and the findings: use beyond the granted seats, use after its end (with nothing else in
force), use of a product it does not cover, and use below the outcome it promised.

Usage of the metric `seats` is compared with the seats the exception grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction

from waiverdesk.audit import services as audit
from waiverdesk.core.lifecycle import IN_FORCE
from waiverdesk.directory.models import Product
from waiverdesk.entitlements.models import EntitlementChange
from waiverdesk.notifications import services as notify
from waiverdesk.waivers.models import Waiver

from .models import Flag

METRIC = "seats"
AFTER_END = timedelta(days=90)  # how long after its end use still points at an exception


@dataclass
class Utilization:
    allowed: float | None
    peak: float | None
    months: list[dict[str, Any]] = field(default_factory=list)
    findings: list[tuple[str, str]] = field(default_factory=list)


def of(waiver: Waiver, today: date) -> Utilization:
    """The use of `waiver`'s products over its period, and what is wrong with it."""
    return of_many([waiver], today)[waiver.pk]


def of_many(waivers: list[Waiver], today: date) -> dict[int, Utilization]:
    """`of` for many exceptions at once: a few set-based SQL aggregates over the usage
    records of their customers, however many exceptions there are."""
    if not waivers:
        return {}
    by_id = {w.pk: w for w in waivers}
    ids = list(by_id)
    granted = _granted_seats(ids)
    daily = _by_waiver(_rows(_PEAK_BY_DAY, ids))  # (day, peak) within each period
    later = _by_waiver(_rows(_AFTER_END_BY_DAY, ids))  # (day, records, peak) after each end
    elsewhere = _uncovered(ids, _rows(_USED_PRODUCTS, ids))
    covered_now = _in_force_cover(waivers)
    found = {}
    for pk, waiver in by_id.items():
        months: dict[str, float] = {}
        for day, peak in daily.get(pk, []):
            key = str(day)[:7]
            months[key] = max(months.get(key, 0), peak)
        peak = max(months.values(), default=None)
        seats = granted.get(pk, waiver.scope.get("seats"))
        allowed = float(seats) if isinstance(seats, int | float) else None
        result = Utilization(
            allowed, peak, [{"month": m, "peak": v} for m, v in sorted(months.items())]
        )
        if allowed is not None and peak is not None and peak > allowed:
            result.findings.append(("over_scope", f"peak use {peak:g} seats, {allowed:g} granted"))
        window = waiver.end + AFTER_END
        after = [r for r in later.get(pk, []) if _day(r[0]) <= min(window, today)]
        if today > waiver.end and after and pk not in covered_now:
            count, top = sum(r[1] for r in after), max(r[2] for r in after)
            result.findings.append(
                ("after_end", f"{count} records after {waiver.end}, up to {top:g}")
            )
        if codes := elsewhere.get(pk):
            result.findings.append(
                ("uncovered_product", f"use of {', '.join(codes)} in the period")
            )
        target = _promised(waiver)
        half_way = waiver.start + (waiver.end - waiver.start) / 2
        if target is not None and today >= half_way and (peak or 0) < target:
            result.findings.append(
                ("under_use", f"peak use {peak or 0:g} seats, {target:g} promised")
            )
        found[pk] = result
    return found


# Usage joined to each exception by customer and covered product, over its period.
_PEAK_BY_DAY = """
    SELECT w.id, u.period_start, MAX(u.quantity)
    FROM waivers_waiver w
    JOIN waivers_waiver_products wp ON wp.waiver_id = w.id
    JOIN usage_usagerecord u ON u.customer_id = w.customer_id AND u.product_id = wp.product_id
    WHERE w.id IN ({ids}) AND u.metric = %s
      AND u.period_start <= w."end" AND u.period_end >= w.start
    GROUP BY w.id, u.period_start
"""
_AFTER_END_BY_DAY = """
    SELECT w.id, u.period_start, COUNT(*), MAX(u.quantity)
    FROM waivers_waiver w
    JOIN waivers_waiver_products wp ON wp.waiver_id = w.id
    JOIN usage_usagerecord u ON u.customer_id = w.customer_id AND u.product_id = wp.product_id
    WHERE w.id IN ({ids}) AND u.metric = %s AND u.period_start > w."end" AND u.quantity > 0
    GROUP BY w.id, u.period_start
"""
# Every product of the customer in use during each period.
_USED_PRODUCTS = """
    SELECT w.id, u.product_id
    FROM waivers_waiver w
    JOIN usage_usagerecord u ON u.customer_id = w.customer_id
    WHERE w.id IN ({ids}) AND u.metric = %s AND u.quantity > 0
      AND u.period_start <= w."end" AND u.period_end >= w.start
    GROUP BY w.id, u.product_id
"""


def _rows(sql: str, ids: list[int]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(ids=", ".join(["%s"] * len(ids))), [*ids, METRIC])
        return cursor.fetchall()


def _uncovered(ids: list[int], used: list[tuple[int, int]]) -> dict[int, list[str]]:
    """Per exception, the products in use that it does not cover but whose family it does."""
    products = dict((pk, (code, family)) for pk, code, family in
                    Product.objects.values_list("pk", "code", "family"))  # fmt: skip
    covered: dict[int, set[int]] = {}
    for waiver, product in Waiver.products.through.objects.filter(waiver_id__in=ids).values_list(
        "waiver_id", "product_id"
    ):
        covered.setdefault(waiver, set()).add(product)
    found: dict[int, list[str]] = {}
    for waiver, product in used:
        mine = covered.get(waiver, set())
        families = {products[p][1] for p in mine}
        if product not in mine and products[product][1] in families:
            found.setdefault(waiver, []).append(products[product][0])
    return {w: sorted(codes) for w, codes in found.items()}


def _by_waiver(rows: list[tuple]) -> dict[int, list[tuple]]:
    grouped: dict[int, list[tuple]] = {}
    for waiver, *rest in rows:
        grouped.setdefault(waiver, []).append(tuple(rest))
    return grouped


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


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
    recent = list(recent)
    results = of_many(recent, today)
    for waiver in recent:
        for kind, detail in results[waiver.pk].findings:
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


def _granted_seats(ids: list[int]) -> dict[int, Any]:
    """The seats each exception granted, where it took effect."""
    grants = EntitlementChange.objects.filter(waiver_id__in=ids, change="grant", item="seats")
    return dict(grants.values_list("waiver_id", "value"))


def _promised(waiver: Waiver) -> float | None:
    for outcome in waiver.outcomes:
        target = outcome.get("target")
        if isinstance(target, int | float):
            return float(target)
    return None


def _in_force_cover(waivers: list[Waiver]) -> set[int]:
    """The exceptions whose customer and product another exception in force covers."""
    through = Waiver.products.through.objects
    key = ("waiver_id", "waiver__customer_id", "product_id")
    in_force: dict[tuple[int, int], set[int]] = {}
    for other, customer, product in through.filter(waiver__status__in=IN_FORCE).values_list(*key):
        in_force.setdefault((customer, product), set()).add(other)
    return {
        w
        for w, customer, product in through.filter(waiver__in=waivers).values_list(*key)
        if in_force.get((customer, product), set()) - {w}
    }
