"""Conversion to the base currency, without a database."""

from datetime import date
from decimal import Decimal

import pytest

from waiverdesk.core import money

DAY = date(2027, 1, 4)
QUOTES = [
    money.Quote("EUR", "USD", DAY, Decimal("1.04")),
    money.Quote("EUR", "GBP", DAY, Decimal("0.83")),
]


def test_a_quote_against_the_base_converts_directly_and_the_other_way_round():
    assert money.factor("USD", "EUR", QUOTES) == (1 / Decimal("1.04"), DAY)
    assert money.factor("EUR", "USD", QUOTES) == (Decimal("1.04"), DAY)
    assert money.factor("USD", "USD", QUOTES) == (1, None)


def test_a_cross_rate_goes_through_a_common_currency():
    factor, day = money.factor("GBP", "USD", QUOTES)  # USD per GBP, through EUR
    assert factor == Decimal("1.04") / Decimal("0.83") and day == DAY
    with pytest.raises(money.NoRate):
        money.factor("CHF", "USD", QUOTES)


def test_the_recorded_figures_are_rounded_to_the_cent_half_to_even():
    recorded = money.to_base({"currency": "usd", "concession": 1040.0, "list_value": 0.0052},
                             "EUR", QUOTES)  # fmt: skip
    assert recorded["currency"] == "USD" and recorded["rate_day"] == "2027-01-04"
    assert recorded["concession_base"] == 1000.0 and recorded["list_value_base"] == 0.0
    assert "revenue_effect_base" not in recorded  # no figure given, none made up
    in_base = money.to_base({"concession": 0.125, "list_value": 0.375}, "EUR", QUOTES)
    assert (in_base["concession_base"], in_base["list_value_base"]) == (0.12, 0.38)
    assert in_base["currency"] == "EUR" and in_base["rate"] == "1"
