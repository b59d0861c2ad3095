"""Exchange rates: imported from a treasury system's CSV or the ECB's reference-rate files,
kept by the day they take effect, and used to convert a request's money to the base currency.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import money
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.policies import services as policies

from .models import ExchangeRate

CODE = re.compile(r"^[A-Z]{3}$")
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Row:
    base: str
    currency: str
    day: date
    rate: Decimal


def quotes_on(currency: str, base: str, day: date) -> list[money.Quote]:
    """The latest quotes in force on `day` that can convert `currency` to `base`."""
    if currency == base:
        return []
    bases = set(ExchangeRate.objects.values_list("base", flat=True).distinct())
    pairs = {(base, currency), (currency, base)}
    pairs |= {(via, code) for via in bases for code in (currency, base) if via != code}
    found = []
    for quoted_base, quoted in sorted(pairs):
        latest = (
            ExchangeRate.objects.filter(base=quoted_base, currency=quoted, day__lte=day)
            .order_by("-day")
            .values_list("day", "rate")
            .first()
        )
        if latest:
            found.append(money.Quote(quoted_base, quoted, latest[0], latest[1]))
    return found


def to_base(financials: dict, base: str, day: date) -> dict:
    """The request's figures in `base` at the rates in force on `day`, or Invalid at
    financials.currency."""
    currency = str(financials.get("currency") or base).upper()
    try:
        return money.to_base(financials, base, quotes_on(currency, base, day))
    except money.NoRate:
        raise Invalid(
            [
                Problem(
                    "financials.currency",
                    "no_rate",
                    f"there is no exchange rate from {currency} to {base} in force on {day}; "
                    f"ask an admin to import one, or give the figures in {base}",
                )
            ]
        ) from None


def read(text: str, base: str) -> list[Row]:
    """Rows from a CSV in one of two shapes, or Invalid naming every bad line:
    `date,currency,rate[,base]` (a treasury export; `base` defaults to the given one), or
    the ECB's `Date, USD, JPY, …` files (daily or historical, against EUR)."""
    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header = [h.strip() for h in (lines[0] if lines else [])]
    if [h.lower() for h in header[:3]] == ["date", "currency", "rate"]:
        rows, problems = _long(lines[1:], header, base)
    elif header[:1] == ["Date"] and all(CODE.match(h) for h in header[1:] if h):
        rows, problems = _wide(lines[1:], header)
    else:
        raise Invalid(
            [
                Problem(
                    "file",
                    "unknown_columns",
                    "the first line must be 'date,currency,rate' (optionally ',base'), or an "
                    "ECB reference-rate file starting 'Date, USD, JPY, …'",
                )
            ]
        )
    if problems:
        raise Invalid(problems[:MAX_PROBLEMS])
    if not rows:
        raise Invalid([Problem("file", "empty", "the file holds no rates")])
    return rows


def _long(lines, header, base):
    rows, problems = [], []
    has_base = len(header) > 3 and header[3].lower() == "base"
    for number, cells in enumerate(lines, start=2):
        if not any(c.strip() for c in cells):
            continue
        cells = [c.strip() for c in cells] + [""] * 4
        row_base = cells[3].upper() if has_base and cells[3] else base
        problems += _row(number, cells[0], cells[1].upper(), cells[2], row_base, rows)
    return rows, problems


def _wide(lines, header):
    rows, problems = [], []
    for number, cells in enumerate(lines, start=2):
        if not any(c.strip() for c in cells):
            continue
        day = cells[0].strip()
        for code, value in zip(header[1:], cells[1:], strict=False):
            value = value.strip()
            if code and value and value != "N/A":
                problems += _row(number, day, code, value, "EUR", rows)
    return rows, problems


def _row(number: int, day: str, currency: str, rate: str, base: str, rows: list) -> list:
    where = f"line {number}"
    problems = []
    parsed_day = _day(day)
    if parsed_day is None:
        problems.append(Problem(where, "invalid_date", f"'{day}' is not a date (2027-01-04)"))
    for code, what in ((currency, "currency"), (base, "base currency")):
        if not CODE.match(code):
            problems.append(Problem(where, "invalid_currency", f"'{code}' is not a {what} code"))
    value = _rate(rate)
    if value is None:
        problems.append(Problem(where, "invalid_rate", f"'{rate}' is not a positive rate"))
    if not problems:
        rows.append(Row(base, currency, parsed_day, value))
    return problems


def _day(text: str) -> date | None:
    for shape in ("%Y-%m-%d", "%d %B %Y"):
        try:
            return datetime.strptime(text, shape).date()
        except ValueError:
            continue
    return None


def _rate(text) -> Decimal | None:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        return None
    # Stored with ten decimals: a rate that would round to nothing is no rate.
    if not value.is_finite() or value < Decimal("1e-10") or value >= Decimal("1e13"):
        return None
    return value.quantize(Decimal("1e-10"))


def store(rows: list[Row], by: str, source: str = "") -> dict[str, int]:
    """Add the rates, or correct a day's rate, in one transaction; count what changed.
    Waivers keep the rate they were converted at, so no past figure moves."""
    now = clock.now()
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    with transaction.atomic():
        known = {
            (r.base, r.currency, r.day): r
            for r in ExchangeRate.objects.filter(
                day__in={row.day for row in rows}, currency__in={row.currency for row in rows}
            )
        }
        added = []
        for row in {(r.base, r.currency, r.day): r for r in rows}.values():
            old = known.get((row.base, row.currency, row.day))
            exact = row.rate.quantize(Decimal("1e-10"))
            if old is None:
                added.append(
                    ExchangeRate(base=row.base, currency=row.currency, day=row.day,
                                 rate=exact, source=source, imported_at=now)
                )  # fmt: skip
            elif old.rate != exact:
                old.rate, old.source, old.imported_at = exact, source, now
                old.save(update_fields=["rate", "source", "imported_at"])
                counts["changed"] += 1
            else:
                counts["unchanged"] += 1
        ExchangeRate.objects.bulk_create(added)
        counts["added"] = len(added)
        days = sorted({r.day for r in rows})
        audit.append(
            by,
            "rates.imported",
            None,
            {**counts, "source": source, "from": days[0].isoformat(), "to": days[-1].isoformat()},
            object_type="rates",
            object_ref=source or "api",
            at=now,
        )
    return counts


def base_currency() -> str:
    """The active policy's base currency (EUR before any policy is published)."""
    try:
        return policies.compiled(policies.active_version()).document.base_currency
    except policies.NoActivePolicy:
        return "EUR"
