"""Whose eyes a page, an email or a file is for: the reader's locale and time zone.

A person's own setting wins; without one, a page follows the browser (its languages, and
the time zone its script reports in the `tz` cookie), and anything else the site's default
(`WAIVERDESK_LOCALE`, `WAIVERDESK_TIME_ZONE`). The middleware makes the reader of each page
current, so that the template filters (`money`, `day`, `moment`) write for them.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from waiverdesk.core import formatting

from .models import Profile


@dataclass(frozen=True)
class Reader:
    locale: str
    zone: ZoneInfo

    def money(self, value, currency) -> str:
        return formatting.money(value, currency, self.locale)

    def day(self, value, width: str = "medium") -> str:
        return formatting.day(value, self.locale, width)

    def moment(self, value) -> str:
        return formatting.moment(value, self.zone, self.locale)

    def number(self, value, digits: int = 2) -> str:
        return formatting.number(value, self.locale, digits)

    @property
    def zone_name(self) -> str:
        return formatting.zone_label(self.zone, self.locale)


def site_default() -> Reader:
    return Reader(
        formatting.known_locale(settings.WAIVERDESK_LOCALE) or formatting.DEFAULT_LOCALE,
        formatting.known_zone(settings.WAIVERDESK_TIME_ZONE) or ZoneInfo("UTC"),
    )


def reader_of(user, request: HttpRequest | None = None) -> Reader:
    """The reader `user` is: their settings, else their browser's (when `request`), else
    the site's default."""
    default = site_default()
    locale, zone = None, None
    if user is not None and getattr(user, "is_authenticated", False):
        profile = Profile.objects.filter(user=user).first()
        if profile is not None:
            locale = formatting.known_locale(profile.locale)
            zone = formatting.known_zone(profile.time_zone)
    if request is not None:
        locale = locale or _browser_locale(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))
        zone = zone or formatting.known_zone(request.COOKIES.get("tz"))
    return Reader(locale or default.locale, zone or default.zone)


def readers_for(users) -> dict[int, Reader]:
    """Each of `users` (by id) as a reader, from their settings (one query for them all)."""
    default = site_default()
    profiles = {p.user_id: p for p in Profile.objects.filter(user__in=[u.pk for u in users])}
    found = {}
    for user in users:
        profile = profiles.get(user.pk)
        locale = formatting.known_locale(profile.locale) if profile else None
        zone = formatting.known_zone(profile.time_zone) if profile else None
        found[user.pk] = Reader(locale or default.locale, zone or default.zone)
    return found


def _browser_locale(header: str) -> str | None:
    """The first language of an Accept-Language header that names a country too (so that
    dates and numbers have a convention), else its first known language."""
    tags = [part.split(";")[0].strip() for part in header.split(",")[:10]]
    known = [formatting.known_locale(tag) for tag in tags if tag and tag != "*"]
    known = [k for k in known if k]
    return next((k for k in known if "_" in k), known[0] if known else None)


_current: contextvars.ContextVar[Reader | None] = contextvars.ContextVar("reader", default=None)


def current() -> Reader:
    """The reader of what is being written now (the site's default outside any)."""
    return _current.get() or site_default()


@contextlib.contextmanager
def writing_for(reader: Reader):
    """Write for `reader` in this block: the filters, and Django's own time zone."""
    token = _current.set(reader)
    timezone.activate(reader.zone)
    try:
        yield reader
    finally:
        timezone.deactivate()
        _current.reset(token)


def middleware(get_response):
    """Each page is written for the person who asked for it."""

    def inner(request: HttpRequest):
        with writing_for(reader_of(getattr(request, "user", None), request)):
            return get_response(request)

    return inner
