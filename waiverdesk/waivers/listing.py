"""One list of requests for every page that lists them (my requests, the inbox, all
requests, a customer's or a product's): search, filters, sort by any column, keyset pages of
50 whose links can be shared, and exports of exactly what is filtered.

A query is read from the page's address (`QueryDict`), each bad value a Problem named by
its filter's label; the waivers are always those `access` lets the person see.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import QueryDict

from waiverdesk.core.errors import Problem
from waiverdesk.core.lifecycle import UNDER_REVIEW, Status
from waiverdesk.policies import services as policies

from . import search
from .models import RouteStep, Waiver, amount_in_base
from .request_form import REGIONS

PAGE_SIZE = 50
# A list counts what it finds exactly up to this many, and says "more than" beyond: the
# exact count of a search that finds most of a million requests reads every one of them.
COUNT_MOST = 10_000
RISK_LEVELS = ("low", "medium", "high", "critical")
_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)


def _pending_step() -> QuerySet:
    return RouteStep.objects.filter(
        waiver=OuterRef("pk"), round=OuterRef("round"), status=RouteStep.State.PENDING
    ).order_by("position")  # not the model's order, which would join the waiver again


# Sort key -> (column heading, expression, kind of value): every expression is not null, so
# that a page can start after any row.
SORTS: dict[str, tuple[str, Any, str]] = {
    "reference": ("Request", F("reference"), "text"),
    "type": ("Type", F("type"), "text"),
    "customer": ("Customer", F("customer__name"), "text"),
    "requester": ("Requester", F("requester__username"), "text"),
    "amount": ("Amount", amount_in_base(), "number"),
    "risk": (
        "Risk",
        Case(
            *(When(risk__overall=lvl, then=Value(i + 1)) for i, lvl in enumerate(RISK_LEVELS)),
            default=Value(0),
            output_field=IntegerField(),
        ),
        "number",
    ),  # fmt: skip
    "status": ("Status", F("status"), "text"),
    "start": ("Start", F("start"), "date"),
    "end": ("End", F("end"), "date"),
    "submitted": ("Submitted", Coalesce(F("submitted_at"), Value(_FAR_PAST)), "datetime"),
    "created": ("Created", F("created_at"), "datetime"),
    "waited": (
        "Waiting since",
        Coalesce(
            Subquery(_pending_step().values("opened_at")[:1]),
            Value(_FAR_PAST),
            output_field=DateTimeField(),
        ),
        "datetime",
    ),  # fmt: skip
}


@dataclass
class Query:
    """What a list shows: the search, the filters, the sort and where the page starts."""

    text: str = ""
    statuses: list[str] = field(default_factory=list)
    type: str = ""
    tier: str = ""
    region: str = ""
    family: str = ""
    risks: list[str] = field(default_factory=list)
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    active_from: date | None = None
    active_until: date | None = None
    expiring_before: date | None = None
    sort: str = "created"
    descending: bool = True
    after: tuple[Any, int] | None = None
    before: tuple[Any, int] | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any((self.text, self.statuses, self.type, self.tier, self.region, self.family,
                    self.risks, self.amount_min is not None, self.amount_max is not None,
                    self.active_from, self.active_until, self.expiring_before))  # fmt: skip


# The address's parameters, each with the label a person sees at its field.
LABELS = {
    "q": "Search",
    "status": "Status",
    "type": "Type",
    "tier": "Waiting on tier",
    "region": "Region",
    "family": "Product family",
    "risk": "Risk",
    "amount_min": "Amount from",
    "amount_max": "Amount up to",
    "active_from": "In force from",
    "active_until": "In force until",
    "expiring_before": "Ending before",
    "sort": "Sort",
    "after": "Page",
    "before": "Page",
}


def choices() -> dict[str, list[tuple[str, str]]]:
    """The values each chooser offers: from the lifecycle, the active policy, the directory."""
    from waiverdesk.directory.models import Product

    policy = policies.compiled(policies.active_version())
    families = Product.objects.order_by("family").values_list("family", flat=True).distinct()
    return {
        "status": [(s.value, s.value.replace("_", " ").capitalize()) for s in Status],
        "type": [(n, t.label or n) for n, t in policy.document.types.items()],
        "tier": [(t.name, t.label or t.name) for t in policy.tiers],
        "region": [(r, r) for r in REGIONS],
        "family": [(f, f) for f in families],
        "risk": [(r, r) for r in RISK_LEVELS],
    }


def read(params: QueryDict, default_sort: str = "-created") -> Query:
    """The query an address asks for; every value that cannot be used is a problem."""
    query, problems = Query(), []
    offered = choices()

    def chosen(name: str, many: bool = False) -> list[str]:
        values = [v for v in params.getlist(name) if v != ""]
        known = {v for v, _ in offered[name]}
        bad = [v for v in values if v not in known]
        if bad:
            listed = ", ".join(label for _, label in offered[name])
            problems.append(Problem(name, "invalid",
                                    f"{LABELS[name]}: choose from {listed}"))  # fmt: skip
        good = [v for v in values if v in known]
        return good if many else good[:1]

    query.text = params.get("q", "").strip()[:200]
    query.statuses = chosen("status", many=True)
    query.risks = chosen("risk", many=True)
    for name in ("type", "tier", "region", "family"):
        setattr(query, name, next(iter(chosen(name)), ""))
    for name in ("amount_min", "amount_max"):
        raw = params.get(name, "").strip().replace(",", "")
        if raw:
            try:
                value = Decimal(raw)
                if not value.is_finite() or value < 0:
                    raise InvalidOperation
            except InvalidOperation:
                problems.append(Problem(name, "invalid",
                                        f"{LABELS[name]}: give an amount, like 10000"))  # fmt: skip
            else:
                setattr(query, name, value)
    for name in ("active_from", "active_until", "expiring_before"):
        raw = params.get(name, "").strip()
        if raw:
            try:
                setattr(query, name, date.fromisoformat(raw))
            except ValueError:
                message = f"{LABELS[name]}: give a date, like 2027-03-31"
                problems.append(Problem(name, "invalid", message))
    sort = params.get("sort", "").strip() or default_sort
    key = sort.lstrip("-")
    if key not in SORTS:
        columns = ", ".join(heading for heading, _e, _k in SORTS.values())
        problems.append(Problem("sort", "invalid", f"Sort: choose a column ({columns})"))
        key, sort = default_sort.lstrip("-"), default_sort
    query.sort, query.descending = key, sort.startswith("-")
    for name in ("after", "before"):
        raw = params.get(name, "")
        if raw:
            cursor = _decode(raw, SORTS[key][2])
            if cursor is None:
                problems.append(Problem(name, "invalid",
                                        "Page: this page link is out of date; start again "
                                        "from the first page"))  # fmt: skip
            setattr(query, name, cursor)
    query.problems = problems
    return query


def filtered(waivers: QuerySet, query: Query) -> QuerySet:
    """`waivers` narrowed to what `query` searches and filters for (not yet sorted)."""
    waivers = search.matching(waivers, query.text)
    conditions = Q()
    if query.statuses:
        conditions &= Q(status__in=query.statuses)
    if query.risks:
        conditions &= Q(risk__overall__in=query.risks)
    for name, lookup in (("type", "type"), ("region", "region")):
        if getattr(query, name):
            conditions &= Q(**{lookup: getattr(query, name)})
    if query.family:
        product = Waiver.products.through.objects.filter(
            waiver=OuterRef("pk"), product__family=query.family
        )
        conditions &= Q(Exists(product))
    if query.tier:
        conditions &= Q(Exists(_pending_step().filter(tier=query.tier)),
                        status__in=UNDER_REVIEW)  # fmt: skip
    if query.amount_min is not None:
        conditions &= Q(money__concession_base__gte=float(query.amount_min))
    if query.amount_max is not None:
        conditions &= Q(money__concession_base__lte=float(query.amount_max))
    if query.active_from:
        conditions &= Q(end__gte=query.active_from)
    if query.active_until:
        conditions &= Q(start__lte=query.active_until)
    if query.expiring_before:
        conditions &= Q(end__lt=query.expiring_before)
    return waivers.filter(conditions)


def ordered(waivers: QuerySet, query: Query, backwards: bool = False) -> QuerySet:
    """`waivers` in the query's order (reversed when `backwards`), its key as `sort_key`."""
    descending = query.descending != backwards
    waivers = waivers.annotate(sort_key=SORTS[query.sort][1])
    if descending:
        return waivers.order_by(F("sort_key").desc(), F("id").desc())
    return waivers.order_by(F("sort_key").asc(), F("id").asc())


@dataclass
class Page:
    rows: list[Waiver]
    count: int  # at most COUNT_MOST when counted here
    next: str | None  # the `after` of the next page
    previous: str | None  # the `before` of the previous page
    more: bool = False  # it finds more than `count` (COUNT_MOST)


def page(waivers: QuerySet, query: Query, count: int | None = None) -> Page:
    """One page of 50 of what `query` finds among `waivers`, with the links on either side
    (`count`: how many it finds, when the caller knows)."""
    found = filtered(waivers, query)
    beyond_count = False
    if count is None:
        count = found.order_by()[: COUNT_MOST + 1].count()
        beyond_count, count = count > COUNT_MOST, min(count, COUNT_MOST)
    cursor, backwards = (query.before, True) if query.before else (query.after, False)
    rows_query = ordered(found, query, backwards)
    if cursor is not None:
        rows_query = rows_query.filter(_beyond(cursor, query.descending != backwards))
    # The customers and requesters of the page's rows are read apart: joined, a plan that
    # misjudges how many rows a filter keeps may join them to every row before sorting.
    rows = list(rows_query.prefetch_related("customer", "requester")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if backwards:
        rows.reverse()
    kind = SORTS[query.sort][2]
    has_next = more if not backwards else True
    has_previous = more if backwards else cursor is not None
    return Page(
        rows=rows,
        count=count,
        next=_encode(rows[-1], kind) if rows and has_next else None,
        previous=_encode(rows[0], kind) if rows and has_previous else None,
        more=beyond_count,
    )


EXPORTED = ("id", "reference", "type", "status", "start", "end", "money", "financials",
            "risk", "submitted_at", "created_at", "customer__name", "customer__external_id",
            "requester__username")  # fmt: skip


def everything(waivers: QuerySet, query: Query, chunk: int = 2000) -> Iterator[dict]:
    """Every waiver `query` finds, in its order, as the plain values an export writes (its
    product codes and the tier it waits on included), read in chunks."""
    rows = ordered(filtered(waivers, query), query).values(*EXPORTED).iterator(chunk_size=chunk)
    while batch := list(islice(rows, chunk)):
        ids = [r["id"] for r in batch]
        codes: dict[int, list[str]] = {}
        through = Waiver.products.through.objects.filter(waiver_id__in=ids)
        for waiver_id, code in through.order_by("product__code").values_list(
            "waiver_id", "product__code"
        ):
            codes.setdefault(waiver_id, []).append(code)
        waiting = dict(
            RouteStep.objects.filter(waiver_id__in=ids, status=RouteStep.State.PENDING,
                                     round=F("waiver__round")).values_list("waiver_id", "tier")
        )  # fmt: skip
        for row in batch:
            yield {**row, "products": codes.get(row["id"], []), "waiting": waiting.get(row["id"])}


def _beyond(cursor: tuple[Any, int], descending: bool) -> Q:
    value, pk = cursor
    if descending:
        return Q(sort_key__lt=value) | Q(sort_key=value, id__lt=pk)
    return Q(sort_key__gt=value) | Q(sort_key=value, id__gt=pk)


def _encode(row: Waiver, kind: str) -> str:
    value = row.sort_key
    if kind in ("date", "datetime"):
        value = value.isoformat()
    raw = json.dumps([value, row.pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(raw: str, kind: str) -> tuple[Any, int] | None:
    try:
        value, pk = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(pk, int) or isinstance(pk, bool):
            return None
        if kind == "date":
            value = date.fromisoformat(value)
        elif kind == "datetime":
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                return None
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
        elif not isinstance(value, str):
            return None
        return value, pk
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
