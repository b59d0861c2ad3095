"""Money, numbers, dates and times as a reader writes them: one place, for pages, emails,
PDFs and exports alike. Every function takes the reader's locale (a CLDR identifier such as
`en_US` or `de_DE`) and, for a moment in time, the reader's time zone."""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_timezone_name
from babel.numbers import format_decimal

DEFAULT_LOCALE = "en_US"
EMPTY = "—"


def known_locale(name: str | None) -> str | None:
    """`name` as a CLDR locale identifier (`de-DE` and `de_DE` alike), or None."""
    try:
        return str(Locale.parse((name or "").strip().replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def known_zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone called `name`, or None."""
    name = (name or "").strip()
    if name not in _ZONES:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_ZONES = frozenset(available_timezones())


def zone_names() -> list[str]:
    return sorted(_ZONES)


def number(value, locale: str = DEFAULT_LOCALE, digits: int = 2) -> str:
    """A number with the locale's grouping and decimal mark, cents only when there are any."""
    amount = _decimal(value)
    if amount is None:
        return EMPTY
    return format_decimal(amount, "#,##0." + "#" * digits if digits else "#,##0", locale=locale)


def money(value, currency: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """An amount with its currency code: `USD 1,200,000`, `EUR 1.200.000,50`."""
    shown = number(value, locale)
    if shown == EMPTY:
        return EMPTY
    return f"{(currency or '').upper()}\N{NO-BREAK SPACE}{shown}".strip()


def day(value: date | None, locale: str = DEFAULT_LOCALE, width: str = "medium") -> str:
    """A calendar date as the locale writes it (`Dec 1, 2026`, `01.12.2026`; in a letter,
    width `long`: `December 1, 2026`, `1. Dezember 2026`)."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        value = value.date()
    return format_date(value, width, locale=locale)


def moment(value: datetime | None, zone: tzinfo, locale: str = DEFAULT_LOCALE) -> str:
    """A moment in the reader's time zone, as the locale writes it, to the minute."""
    if value is None:
        return EMPTY
    local = value.astimezone(zone)
    pattern = Locale.parse(locale).datetime_formats["medium"]
    return pattern.format(
        format_time(local, "short", locale=locale), format_date(local, "medium", locale=locale)
    )


def zone_label(zone: tzinfo, locale: str = DEFAULT_LOCALE) -> str:
    """The time zone's name for a column heading: `Europe/Berlin`."""
    return getattr(zone, "key", None) or get_timezone_name(zone, locale=locale)


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None
