"""The health of the exception process (G4), and where requests wait (F1), as SQL aggregates.

Every figure is of the requests *submitted* in the period (the cohort), narrowed by type,
product family and region: how long they took to decide (per tier too) and to take effect,
how many were approved and renewed, whether they kept to the policy, what they conceded and
whether they leaked. Percentiles are continuous (PostgreSQL's `percentile_cont`; computed the
same way from two ordered rows on SQLite)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import TruncMonth

from waiverdesk import clock
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.lifecycle import Status
from waiverdesk.directory.models import Product
from waiverdesk.governance.models import Review
from waiverdesk.policies import services as policies
from waiverdesk.usage.models import Flag
from waiverdesk.waivers.models import RouteStep, Waiver

LEAKAGE = (Flag.Kind.OVER_SCOPE, Flag.Kind.AFTER_END, Flag.Kind.UNCOVERED_PRODUCT)
_PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(\d{2})))?$")


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with its label: "2027", "2027-Q1" or "2027-03"."""

    label: str
    start: date
    end: date

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match((text or "").strip())
        if not match or (match[3] and not 1 <= int(match[3]) <= 12):
            raise Invalid([Problem("period", "invalid", "a year (2027), a quarter (2027-Q1) "
                                                        "or a month (2027-03)")])  # fmt: skip
        year = int(match[1])
        if match[2]:
            first = 3 * int(match[2]) - 2
            return cls(text, date(year, first, 1), _month_after(year, first + 2))
        if match[3]:
            return cls(text, date(year, int(match[3]), 1), _month_after(year, int(match[3])))
        return cls(text, date(year, 1, 1), date(year + 1, 1, 1))

    @classmethod
    def containing(cls, day: date, every: str = "quarter") -> Period:
        """The month, quarter or year that `day` falls in."""
        if every == "month":
            return cls.parse(f"{day.year}-{day.month:02d}")
        if every == "year":
            return cls.parse(str(day.year))
        return cls.parse(f"{day.year}-Q{(day.month + 2) // 3}")

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        if "-Q" in self.label:
            year, q = int(self.label[:4]), int(self.label[-1])
            return Period.parse(f"{year - 1}-Q4" if q == 1 else f"{year}-Q{q - 1}")
        if "-" in self.label:
            before = self.start - timedelta(days=1)
            return Period.parse(f"{before.year}-{before.month:02d}")
        return Period.parse(str(int(self.label) - 1))

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return (datetime.combine(self.start, datetime.min.time(), UTC),
                datetime.combine(self.end, datetime.min.time(), UTC))  # fmt: skip


def _month_after(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


@dataclass(frozen=True)
class Filters:
    type: str = ""
    family: str = ""
    region: str = ""


def cohort(period: Period, filters: Filters = Filters()):
    """The requests submitted in the period, narrowed by the filters."""
    return Waiver.objects.filter(in_cohort(period, filters))


def in_cohort(period: Period, filters: Filters = Filters(), via: str = "") -> Q:
    """The condition that a request (reached through `via`, as "waiver__" from its route
    steps) is in the cohort: a condition on the join rather than a subquery, so the metrics
    read each request once, from the index on submission time."""
    start, end = period.bounds
    wanted = Q(**{f"{via}submitted_at__gte": start, f"{via}submitted_at__lt": end})
    if filters.type:
        wanted &= Q(**{f"{via}type": filters.type})
    if filters.region:
        wanted &= Q(**{f"{via}region": filters.region})
    if filters.family:
        in_family = Product.objects.filter(waivers=OuterRef(f"{via}pk"), family=filters.family)
        wanted &= Exists(in_family)
    return wanted


def compute(period: Period, filters: Filters = Filters(), now: datetime | None = None) -> dict:
    """Every figure of the dashboard, for one period and filter. The cohort is read in one
    pass for its counts, one for its concessions, and once per percentile."""
    now = now or clock.now()
    with _sorting_in_memory():
        return _compute(period, filters, now)


def _compute(period: Period, filters: Filters, now: datetime) -> dict:
    rows = cohort(period, filters)
    approved = rows.filter(decision="approved")
    c = rows.aggregate(**_tallies())
    decided = c["approved"] + c["rejected"]
    steps = RouteStep.objects.filter(
        in_cohort(period, filters, "waiver__"),
        status__in=[RouteStep.State.APPROVED, RouteStep.State.REJECTED],
    )
    return {
        "period": period.label,
        "submitted": c["submitted"],
        "approved": c["approved"],
        "rejected": c["rejected"],
        "lapsed": c["lapsed"],  # nobody decided them in time
        "decided": decided,
        "approval_rate": _share(c["approved"], decided),
        "cycle_hours": quantiles(rows.filter(decision__in=["approved", "rejected"]),
                                 "submitted_at", "decided_at"),
        "cycle_by_tier": quantiles(steps, "opened_at", "closed_at", by="tier"),
        "activation_hours": quantiles(approved, "decided_at", "activated_at"),
        "renewed_share": _share(_renewed(approved), c["approved"]),
        "adherence": {
            "documentation_complete": _share(c["complete"], c["submitted"]),
            "reviews_on_time": reviews_on_time(period, now),
            "expired_on_time": _share(c["expired_on_time"], c["expired"]),
            "no_leakage": _share(c["approved"] - _leaked(approved), c["approved"]),
        },
        "concessions": concessions(approved),
        "leakage": leakage(rows, period),
    }  # fmt: skip


def _tallies() -> dict[str, Count]:
    """The cohort's counts, each a filtered count of one pass: decisions, evidence complete
    at submission, expiries on time."""
    complete = Q()
    for name, kind in policies.compiled(policies.active_version()).document.types.items():
        needed = list(kind.required_evidence)
        complete |= Q(type=name, evidence__has_keys=needed) if needed else Q(type=name)
    approved, expired = Q(decision="approved"), Q(status=Status.EXPIRED)
    # The sweep expires an exception the day after its end: on time is by the end of that day.
    on_time = Q(updated_at__lt=F("end") + timedelta(days=2))
    return {
        "submitted": Count("pk"),
        "approved": Count("pk", filter=approved),
        "rejected": Count("pk", filter=Q(decision="rejected")),
        "lapsed": Count("pk", filter=Q(status=Status.LAPSED)),
        "complete": Count("pk", filter=complete),
        "expired": Count("pk", filter=expired),
        "expired_on_time": Count("pk", filter=expired & on_time),
    }


def _renewed(approved) -> int:
    """How many of the approved requests were renewed (a renewal pursued, not withdrawn)."""
    renewals = Waiver.objects.filter(kind=Waiver.Kind.RENEWAL, predecessor__in=approved).exclude(
        status__in=[Status.DRAFT, Status.WITHDRAWN, Status.REJECTED]
    )
    return renewals.values("predecessor").distinct().count()


def _leaked(approved) -> int:
    """How many of the approved requests have a leakage finding."""
    found = Flag.objects.filter(kind__in=LEAKAGE, waiver__in=approved)
    return found.values("waiver").distinct().count()


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def reviews_on_time(period: Period, now: datetime) -> float | None:
    """Of the governance reviews due in the period, the share done by their due time; a
    review still open counts once it is late."""
    start, end = period.bounds
    due = Review.objects.filter(due_at__gte=start, due_at__lt=end).exclude(
        outcome=Review.Outcome.ENDED
    )
    reviews = due.aggregate(
        on_time=Count("pk", filter=~Q(outcome="") & Q(decided_at__lte=F("due_at"))),
        counted=Count("pk", filter=~Q(outcome="") | Q(due_at__lt=now)),
    )
    return _share(reviews["on_time"], reviews["counted"])


def concessions(approved) -> dict[str, Any]:
    """What the approved requests conceded, in the base currency at the rate each was
    submitted at: in all, and by month, region and type (one pass), and by product. A
    request's concession is counted once: on several products it is split between them."""
    groups = (
        approved.annotate(month=TruncMonth("submitted_at"))
        .values("month", "region", "type")
        .annotate(total=Sum("concession_base"))
        .order_by()
    )
    found: dict[str, Any] = {"total": 0, "by_month": {}, "by_region": {}, "by_type": {}}
    for g in groups:
        total = g["total"] or 0
        found["total"] += total
        for name, key in (("by_month", g["month"].strftime("%Y-%m")),
                          ("by_region", g["region"]), ("by_type", g["type"])):  # fmt: skip
            found[name][key] = found[name].get(key, 0) + total
    found["by_product"] = dict(_by_product(approved))
    found = {k: dict(sorted(v.items())) if isinstance(v, dict) else v for k, v in found.items()}
    found["currency"] = base_currency()
    return found


def _by_product(approved) -> list[tuple[str, float]]:
    """Each product's share of the concessions: a request's split evenly between its
    products. In SQL, because the ORM counts a request's products only in a subquery run
    once per row; a window over the joined rows counts them in the same pass."""
    cohort_sql, params = approved.order_by().values("id", "concession_base").query.sql_with_params()
    links, products = Waiver.products.through._meta.db_table, Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT code, SUM(share) FROM ("
            "  SELECT p.code, a.concession_base / COUNT(*) OVER (PARTITION BY a.id) AS share"
            f" FROM ({cohort_sql}) a JOIN {links} l ON l.waiver_id = a.id"
            f" JOIN {products} p ON p.id = l.product_id"
            ") shares GROUP BY code",
            params,
        )
        return [(code, total or 0) for code, total in cursor.fetchall()]


def base_currency() -> str:
    """The currency figures are summed in: the active policy's base currency."""
    return policies.compiled(policies.active_version()).document.base_currency


def leakage(rows, period: Period) -> dict[str, int]:
    """Leakage found in the period on the cohort's exceptions: findings and exceptions."""
    start, end = period.bounds
    flags = Flag.objects.filter(waiver__in=rows, kind__in=LEAKAGE, found_at__gte=start,
                                found_at__lt=end)  # fmt: skip
    return flags.aggregate(findings=Count("pk"), waivers=Count("waiver", distinct=True))


def bottlenecks(period: Period, filters: Filters = Filters(), now: datetime | None = None):
    """Where the cohort's requests wait longest: hours a step waited to its decision by
    approver role, by type, and by tier per policy version (by tier alone, that is the
    cycle time per tier of `compute`), and how long pending steps have waited so far. Steps
    closed undecided (the request lapsed, or a step beside them decided the round) are not
    decisions and count in neither."""
    with _sorting_in_memory():
        return _bottlenecks(period, filters, now or clock.now())


def _bottlenecks(period: Period, filters: Filters, now: datetime) -> dict[str, Any]:
    steps = RouteStep.objects.filter(in_cohort(period, filters, "waiver__"),
                                     opened_at__isnull=False)  # fmt: skip
    open_until = Value(now, output_field=DateTimeField())
    closed = steps.filter(closed_at__isnull=False).exclude(status=RouteStep.State.CLOSED)
    pending = steps.filter(closed_at__isnull=True, status=RouteStep.State.PENDING)
    waits = grouped_quantiles(closed, "opened_at", "closed_at", by_role=("role",),
                              by_type=("waiver__type",),
                              by_version=("waiver__policy_version__number", "tier"))  # fmt: skip
    return {
        **waits,
        "by_version": _nested(waits["by_version"]),
        "pending": quantiles(pending.annotate(until=open_until), "opened_at", "until", by="tier"),
    }


@contextmanager
def _sorting_in_memory() -> Iterator[None]:
    """On PostgreSQL, room for a period's figures to be sorted in memory (percentiles sort
    every value of their group), for this transaction only."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '64MB'")
        yield


def _nested(table: dict[tuple, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for (outer, inner), value in table.items():
        nested.setdefault(str(outer), {})[inner] = value
    return nested


def flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every figure as (dotted name, value): `cycle_by_tier.manager.p50`, for CSV files."""
    if not isinstance(value, dict):
        return [(path, value)]
    return [row for key, inner in value.items()
            for row in flatten(inner, f"{path}.{key}" if path else str(key))]  # fmt: skip


# -- percentiles -------------------------------------------------------------------------------


class _Percentile(Aggregate):
    """PostgreSQL's continuous percentile of an interval, in hours."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY date_part('epoch', %(expressions)s) / 3600.0)"  # noqa: E501
    output_field = FloatField()

    def __init__(self, expression, fraction: float):
        super().__init__(expression)
        self.extra["fraction"] = fraction


def quantiles(rows, start: str, end: str, by: str | tuple[str, ...] | None = None):
    """p50 and p90 of `end - start` in hours, with the count: one dict, or one per group
    (keyed by the group's value, or a tuple of values) when `by` is given."""
    span = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    rows = rows.filter(**{f"{start}__isnull": False, f"{end}__isnull": False}).annotate(span=span)
    if by is None:
        if connection.vendor == "postgresql":
            found = rows.aggregate(
                n=Count("pk"), p50=_Percentile("span", 0.5), p90=_Percentile("span", 0.9)
            )
            return {"n": found["n"], "p50": _round(found["p50"]), "p90": _round(found["p90"])}
        n = rows.count()
        return {"n": n, **(_ordered_quantiles(rows, n) if n else {"p50": None, "p90": None})}
    groups = (by,) if isinstance(by, str) else tuple(by)
    if connection.vendor == "postgresql":
        found = rows.values(*groups).annotate(
            n=Count("pk"), p50=_Percentile("span", 0.5), p90=_Percentile("span", 0.9)
        ).order_by(*groups)  # fmt: skip
        return {_key(r, groups): {"n": r["n"], "p50": _round(r["p50"]), "p90": _round(r["p90"])}
                for r in found}  # fmt: skip
    table = {}
    for r in rows.values(*groups).annotate(n=Count("pk")).order_by(*groups):
        subset = rows.filter(**{g: r[g] for g in groups})
        table[_key(r, groups)] = {"n": r["n"], **_ordered_quantiles(subset, r["n"])}
    return table


def grouped_quantiles(rows, start: str, end: str, **groupings: tuple[str, ...]) -> dict:
    """`quantiles(rows, start, end, by=…)` for each named grouping; on PostgreSQL in one
    statement (GROUPING SETS), which joins and reads the rows once for all of them."""
    if connection.vendor != "postgresql":
        return {name: quantiles(rows, start, end, by=by[0] if len(by) == 1 else by)
                for name, by in groupings.items()}  # fmt: skip
    columns = sorted({c for by in groupings.values() for c in by})
    alias = {c: f"g{i}" for i, c in enumerate(columns)}
    span = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    inner = rows.filter(**{f"{start}__isnull": False, f"{end}__isnull": False}).order_by()
    picked = inner.values(**{alias[c]: F(c) for c in columns}, span=span)
    sql, params = picked.query.sql_with_params()
    # GROUPING() has a bit set for each column a row's grouping leaves out, the first highest.
    bit = {c: 1 << (len(columns) - 1 - i) for i, c in enumerate(columns)}
    name_of = {sum(bit.values()) - sum(bit[c] for c in by): name for name, by in groupings.items()}
    keys = ", ".join(alias[c] for c in columns)
    sets = ", ".join("(" + ", ".join(alias[c] for c in by) + ")" for by in groupings.values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {keys}, GROUPING({keys}), COUNT(*), percentile_cont(ARRAY[0.5, 0.9]) "
            f"WITHIN GROUP (ORDER BY date_part('epoch', span) / 3600.0) FROM ({sql}) s "
            f"GROUP BY GROUPING SETS ({sets})",
            params,
        )
        found = cursor.fetchall()
    tables: dict[str, dict] = {name: {} for name in groupings}
    in_order = sorted(found, key=lambda r: [(v is None, "" if v is None else v) for v in r[:-3]])
    for *values, grouping, n, (p50, p90) in in_order:  # each table in its groups' order
        name = name_of[grouping]
        key = tuple(values[columns.index(c)] for c in groupings[name])
        tables[name][key[0] if len(key) == 1 else key] = {"n": n, "p50": _round(p50),
                                                          "p90": _round(p90)}  # fmt: skip
    return tables


def _key(row: dict, groups: tuple[str, ...]):
    return row[groups[0]] if len(groups) == 1 else tuple(row[g] for g in groups)


def _ordered_quantiles(rows, n: int) -> dict[str, float | None]:
    found = {}
    for name, fraction in (("p50", 0.5), ("p90", 0.9)):
        position = fraction * (n - 1)
        low = math.floor(position)
        pair = list(rows.order_by("span").values_list("span", flat=True)[low : low + 2])
        hours = [span.total_seconds() / 3600 for span in pair]
        above = hours[1] if len(hours) > 1 else hours[0]
        found[name] = _round(hours[0] + (above - hours[0]) * (position - low))
    return found


def _round(hours: float | None) -> float | None:
    return None if hours is None else round(hours, 2)
