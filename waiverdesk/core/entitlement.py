"""What an exception changes in a customer's entitlement, and the sum of such changes."""

from __future__ import annotations

from datetime import date
from typing import Any


def effects(spec: dict[str, str], scope: dict[str, Any], end: date) -> dict[str, Any]:
    """The items a waiver grants (`spec` maps each item to `scope.x` or `end`); items whose
    source the request leaves empty are left out."""
    granted = {}
    for item, source in spec.items():
        value = end.isoformat() if source == "end" else scope.get(source.split(".", 1)[1])
        if value not in (None, "", []):
            granted[item] = value
    return granted


def combine(item: str, values: list[Any]) -> Any:
    """The effective value of several grants of one item on one product: seats and usage
    caps add up, the largest discount and the latest term end apply, features unite."""
    if item in ("seats", "usage_cap"):
        return sum(values)
    if item == "features":
        return sorted({f for v in values for f in v})
    return max(values)
