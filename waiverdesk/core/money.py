"""Money in the policy's base currency (A11): a request's figures converted at the rate in
force on the day it was submitted, recorded with the request so that no later rate changes
what was decided.

A rate says how many units of `currency` one unit of `base` buys on and after `day` (the
convention of the ECB's reference rates: 1 EUR = 1.0565 USD). A conversion uses the quote
against the policy's base currency, or crosses two quotes against a common one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

AMOUNTS = ("list_value", "concession", "revenue_effect")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Quote:
    base: str
    currency: str
    day: date
    rate: Decimal  # units of `currency` per unit of `base`


class NoRate(LookupError):
    """No rate in force converts the currency to the base currency on that day."""


def factor(currency: str, base: str, quotes: list[Quote]) -> tuple[Decimal, date | None]:
    """Base-currency units per unit of `currency`, and the day of the quote(s) used:
    direct when a quote against `base` exists, else crossed through a common currency.
    `quotes` are the latest in force on the day, one per (base, currency)."""
    if currency == base:
        return Decimal(1), None
    latest = {(q.base, q.currency): q for q in quotes}
    if (base, currency) in latest:
        quote = latest[(base, currency)]
        return 1 / quote.rate, quote.day
    if (currency, base) in latest:
        quote = latest[(currency, base)]
        return quote.rate, quote.day
    for (via, quoted), there in sorted(latest.items()):
        if quoted == currency and (via, base) in latest:
            back = latest[(via, base)]
            return back.rate / there.rate, min(there.day, back.day)
    raise NoRate(currency)


def to_base(financials: dict, base: str, quotes: list[Quote]) -> dict:
    """The request's figures in the base currency, with the rate and its day: what the
    waiver records. A blank currency is the base currency."""
    currency = str(financials.get("currency") or base).upper()
    rate, day = factor(currency, base, quotes)
    recorded = {
        "base": base,
        "currency": currency,
        "rate": f"{rate.quantize(Decimal('1e-10')).normalize():f}",
        "rate_day": day.isoformat() if day else None,
    }
    for name in AMOUNTS:
        value = financials.get(name)
        if value is not None:
            amount = Decimal(str(value)) * rate
            recorded[f"{name}_base"] = float(amount.quantize(CENT, ROUND_HALF_EVEN))
    return recorded
