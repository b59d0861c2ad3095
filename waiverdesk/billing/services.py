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
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from waiverdesk.core import cells
from waiverdesk.directory.models import Customer, Product
from waiverdesk.usage.models import UsageRecord
from waiverdesk.waivers.models import Waiver

from .models import InvoiceLine

COLUMNS = ["invoice", "line", "customer", "product", "period_start", "period_end", "quantity",
           "unit_price", "discount_pct"]  # fmt: skip
GRANTING = ["approved", "active", "expired", "terminated", "superseded"]
TOLERANCE = 0.005


@dataclass
class Discrepancy:
    line: InvoiceLine
    kind: str  # over_discounted | billed_after_expiry | under_billed
    detail: str


def import_lines(text: io.TextIOBase, now: datetime) -> tuple[int, int, list[str]]:
    """Read invoice lines from CSV: (kept, already imported, problems by line number)."""
    customers = dict(Customer.objects.values_list("external_id", "pk"))
    products = dict(Product.objects.values_list("code", "pk"))
    kept, known, problems = 0, 0, []
    rows = csv.DictReader(text)
    for row in rows:
        try:
            line = InvoiceLine(
                invoice=row["invoice"].strip(),
                line=int(row["line"]),
                customer_id=customers[row["customer"]],
                product_id=products[row["product"]],
                period_start=date.fromisoformat(row["period_start"]),
                period_end=date.fromisoformat(row["period_end"]),
                quantity=float(row["quantity"]),
                unit_price=float(row["unit_price"]),
                discount_pct=float(row.get("discount_pct") or 0),
                imported_at=now,
            )
        except KeyError as missing:
            problems.append(f"line {rows.line_num}: unknown or missing {missing.args[0]}")
            continue
        except (TypeError, ValueError) as error:
            problems.append(f"line {rows.line_num}: {error}")
            continue
        try:
            with transaction.atomic():
                line.save()
            kept += 1
        except IntegrityError:
            known += 1
    return kept, known, problems


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
