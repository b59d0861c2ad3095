"""Template filters that write figures and moments for the current reader."""

from datetime import date, datetime

from django import template

from waiverdesk.directory.readers import current

register = template.Library()


@register.filter
def money(value, currency=""):
    """`{{ amount|money:currency }}` -> `USD 1,200,000`."""
    return current().money(value, currency)


@register.filter
def day(value):
    """A date (or an ISO date, as the API writes it) as the reader writes dates."""
    return current().day(_parsed(value, date.fromisoformat))


@register.filter
def moment(value):
    """A moment (or an ISO moment) in the reader's time zone, as the reader writes it."""
    return current().moment(_parsed(value, datetime.fromisoformat))


def _parsed(value, parse):
    if isinstance(value, str):
        try:
            return parse(value[:10] if parse is date.fromisoformat else value)
        except ValueError:
            return None
    return value


@register.filter
def number(value, digits=2):
    return current().number(value, int(digits))


@register.simple_tag
def zone_name():
    return current().zone_name


@register.filter
def get(mapping, key):
    """`{{ labels|get:name }}`: the value at `key`, or the key itself when there is none."""
    try:
        return mapping.get(key, key)
    except AttributeError:
        return key


@register.simple_tag
def now_moment():
    """The present moment, as the reader reads it."""
    from waiverdesk import clock

    return current().moment(clock.now())


@register.filter
def words(name):
    """A name as words: `business_impact_analysis` -> `business impact analysis`."""
    return str(name).replace("_", " ")
