"""Billing reconciliation (M3): invoice lines compared with what exceptions authorize.

For every invoice line on a customer's product that an exception has ever covered:
- over-discounted: its discount is above what the exceptions in force over the whole line
  period authorize (their `discount_pct`);
- billed after expiry: it carries a discount, none is in force for its period, and an
  exception that authorized one has ended;
- under-billed: the seats used in its period exceed the seats billed plus those that
  exceptions in force grant.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

from django.db import connection
from django.db.models import Max

from waiverdesk import staging
from waiverdesk.core import cells
from waiverdesk.staging import number, problem
from waiverdesk.usage.models import UsageRecord
from waiverdesk.waivers.models import Waiver

from .models import InvoiceLine

GRANTING = ["approved", "active", "expired", "terminated", "superseded"]
TOLERANCE = 0.005


@dataclass
class Discrepancy:
    line: InvoiceLine
    kind: str  # over_discounted | billed_after_expiry | under_billed
    detail: str


FIELDS = ("invoice", "line", "customer", "product", "period_start", "period_end", "quantity",
          "unit_price", "discount_pct")  # fmt: skip
REQUIRED = [(name,) for name in FIELDS if name != "discount_pct"]
DATES = ("period_start", "period_end")
_CHECKS = [
    ("coalesce(length(invoice), 0) NOT BETWEEN 1 AND 60",
     problem("invoice", "required", "give the invoice number (at most 60 characters)")),
    ("line IS NULL", problem("line", "invalid", "a line number: a whole number, 1 or more")),
    *staging.ACCOUNT_CHECKS,
    ("period_start IS NULL OR period_end IS NULL",
     problem("period", "invalid", "give period_start and period_end as dates (YYYY-MM-DD)")),
    staging.PERIOD_ORDER,
    ("quantity IS NULL", problem("quantity", "invalid", "a number, zero or more")),
    ("unit_price IS NULL", problem("unit_price", "invalid", "a price, zero or more")),
    ("discount_pct IS NULL OR discount_pct > 100",
     problem("discount_pct", "invalid", "a discount from 0 to 100 %")),
]  # fmt: skip


def _line_number(text: str) -> str:
    if connection.vendor == "sqlite":  # staged NUMERIC: a whole number arrives as one
        whole = f"typeof({text}) = 'integer' AND {text} BETWEEN 1 AND 2147483647"
        return f"CASE WHEN {whole} THEN {text} END"
    t = f"trim({text})"
    digits = f"ltrim({t}, '0123456789') = '' AND length({t}) BETWEEN 1 AND 9"
    return f"CASE WHEN {digits} AND {t}::int >= 1 THEN {t}::int END"


def _checked(trusting: bool = False) -> str:
    """The staged lines as they would be stored, NULL where a value is not valid."""
    given = number("i.discount_pct")
    discount = f"CASE WHEN coalesce(trim(i.discount_pct), '') = '' THEN 0 ELSE {given} END"
    return f"""
        SELECT i.n, trim(i.invoice) AS invoice, {_line_number("i.line")} AS line,
            c.id AS customer_id, p.id AS product_id,
            {staging.day("i.period_start", trusting)} AS period_start,
            {staging.day("i.period_end", trusting)} AS period_end,
            {number("i.quantity")} AS quantity, {number("i.unit_price")} AS unit_price,
            {discount} AS discount_pct
        {staging.with_accounts("billing_incoming")}"""


LINES = staging.Import(
    name="billing",
    fields=FIELDS,
    numeric=("line", "quantity", "unit_price", "discount_pct"),
    checked=_checked,
    checks=_CHECKS,
    table="billing_invoiceline",
    columns=(*FIELDS[:2], "customer_id", "product_id", *FIELDS[4:], "imported_at"),
    key=("invoice", "line"),
)


def import_lines(
    handle: IO[bytes],
    now: datetime,
    progress: Callable[[int], Any] | None = None,
    encoding: str | None = None,
    date_format: str | None = None,
) -> staging.Report:
    """Import invoice lines from a CSV export (with a header; see waiverdesk.sheets), checked
    by the database a chunk at a time (waiverdesk.staging); a line already imported (the same
    invoice and line number) is counted, not stored again."""
    file = staging.CsvFile.open(LINES, handle, REQUIRED, encoding, date_format, DATES)
    return staging.import_csv(LINES, file, now, progress)


def discrepancies(customer: str | None = None) -> list[Discrepancy]:
    """Every discrepancy between the invoice lines and the exceptions behind them."""
    waivers = Waiver.objects.filter(status__in=GRANTING).prefetch_related("products")
    if customer:
        waivers = waivers.filter(customer__external_id=customer)
    by_account: dict[tuple[int, int], list[Waiver]] = {}
    for w in waivers:
        for p in w.products.all():
            by_account.setdefault((w.customer_id, p.pk), []).append(w)
    lines = InvoiceLine.objects.select_related("customer", "product")
    if customer:
        lines = lines.filter(customer__external_id=customer)
    found = []
    for line in lines:
        behind = by_account.get((line.customer_id, line.product_id))
        if behind:
            found += _check(line, behind)
    return found


def _check(line: InvoiceLine, behind: list[Waiver]) -> list[Discrepancy]:
    in_force = [w for w in behind if _in_force_over(w, line.period_start, line.period_end)]
    authorized = max((_discount(w) for w in in_force), default=0.0)
    found = []
    if line.discount_pct > authorized + TOLERANCE:
        if not in_force and any(_discount(w) and w.end < line.period_start for w in behind):
            found.append(Discrepancy(line, "billed_after_expiry",
                                     f"{line.discount_pct:g} % discount after the exception "
                                     "that allowed it ended"))  # fmt: skip
        else:
            found.append(Discrepancy(line, "over_discounted",
                                     f"{line.discount_pct:g} % billed, {authorized:g} % "
                                     "authorized"))  # fmt: skip
    used = (
        UsageRecord.objects.filter(
            customer_id=line.customer_id, product_id=line.product_id, metric="seats",
            period_start__lte=line.period_end, period_end__gte=line.period_start,
        ).aggregate(peak=Max("quantity"))["peak"]
    )  # fmt: skip
    granted = sum(float(w.scope.get("seats") or 0) for w in in_force)
    if used is not None and used > line.quantity + granted + TOLERANCE:
        found.append(Discrepancy(line, "under_billed",
                                 f"{used:g} seats used, {line.quantity:g} billed and "
                                 f"{granted:g} granted"))  # fmt: skip
    return found


def _in_force_over(waiver: Waiver, start: date, end: date) -> bool:
    """Whether the exception authorized its terms over the whole of start..end."""
    ended_early = waiver.status in ("terminated", "superseded")
    last = waiver.updated_at.date() if ended_early else waiver.end
    return waiver.start <= start and end <= min(waiver.end, last)


def _discount(waiver: Waiver) -> float:
    value = waiver.scope.get("discount_pct")
    return float(value) if isinstance(value, int | float) else 0.0


def as_rows(found: list[Discrepancy]) -> list[dict[str, Any]]:
    return [
        {
            "invoice": d.line.invoice,
            "line": d.line.line,
            "customer": d.line.customer.external_id,
            "product": d.line.product.code,
            "period_start": d.line.period_start.isoformat(),
            "period_end": d.line.period_end.isoformat(),
            "kind": d.kind,
            "detail": d.detail,
        }
        for d in found
    ]


def to_csv(found: list[Discrepancy]) -> str:
    out = io.StringIO()
    rows = as_rows(found)
    writer = csv.DictWriter(out, ["invoice", "line", "customer", "product", "period_start",
                                  "period_end", "kind", "detail"])  # fmt: skip
    writer.writeheader()
    writer.writerows(cells.record(r) for r in rows)
    return out.getvalue()
