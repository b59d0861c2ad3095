"""Recording what exceptions grant and revert, and the effective entitlement delta."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, prefetch_related_objects

from waiverdesk.core import cells
from waiverdesk.core.entitlement import combine, effects
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies

from .models import EntitlementChange

CSV_COLUMNS = ["id", "at", "change", "waiver", "customer", "product", "item", "value"]


def grant(waivers: list, now: datetime) -> None:
    """Record the grants of exceptions that take effect, and tell subscribed systems.
    Call inside the transaction of the change."""
    _record(waivers, EntitlementChange.Change.GRANT, now, "entitlement.granted")


def revert(waivers: list, now: datetime) -> None:
    """Record the reverts of exceptions that end (those that granted something)."""
    _record(waivers, EntitlementChange.Change.REVERT, now, "entitlement.reverted")


def _record(waivers: list, change: str, now: datetime, event: str) -> None:
    """One grant (or revert) per item and product of each waiver, in a few queries."""
    if change == EntitlementChange.Change.GRANT:
        prefetch_related_objects(waivers, "products")
        plans = [(w, list(w.products.all()), effects(_spec(w), w.scope, w.end)) for w in waivers]
    else:
        granted: dict[int, list[EntitlementChange]] = {}
        for g in EntitlementChange.objects.filter(
            waiver__in=waivers, change=EntitlementChange.Change.GRANT
        ).select_related("product"):
            granted.setdefault(g.waiver_id, []).append(g)
        reverted = set(
            EntitlementChange.objects.filter(waiver__in=waivers, change=change).values_list(
                "waiver_id", flat=True
            )
        )
        plans = [
            (w, list({g.product_id: g.product for g in granted[w.pk]}.values()),
             {g.item: g.value for g in granted[w.pk]})
            for w in waivers
            if w.pk in granted and w.pk not in reverted  # granted, and not reverted yet
        ]  # fmt: skip
    rows, told = [], []
    for waiver, products, items in plans:
        if not (products and items):
            continue
        rows += [
            EntitlementChange(waiver=waiver, customer=waiver.customer, product=p, change=change,
                              item=item, value=value, at=now)
            for p in products
            for item, value in items.items()
        ]  # fmt: skip
        told.append((waiver, {"products": sorted(p.code for p in products), "items": items}, []))
    EntitlementChange.objects.bulk_create(rows)
    notify.publish_many(event, told, now)


def _spec(waiver) -> dict[str, str]:
    kind = policies.compiled(waiver.policy_version).document.types.get(waiver.type)
    return kind.entitlement if kind else {}


def effective(customer: str | None = None, product: str | None = None) -> list[dict[str, Any]]:
    """The entitlement delta in force per customer and product: every grant not reverted,
    combined per item (one query)."""
    reverted = EntitlementChange.objects.filter(
        waiver=OuterRef("waiver"),
        product=OuterRef("product"),
        item=OuterRef("item"),
        change=EntitlementChange.Change.REVERT,
    )
    grants = EntitlementChange.objects.filter(change=EntitlementChange.Change.GRANT).exclude(
        Exists(reverted)
    )
    if customer:
        grants = grants.filter(customer__external_id=customer)
    if product:
        grants = grants.filter(product__code=product)
    rows = grants.values_list(
        "customer__external_id", "product__code", "item", "value", "waiver__reference"
    ).order_by("customer__external_id", "product__code", "item")
    folded: dict[tuple[str, str], dict[str, Any]] = {}
    for customer_id, code, item, value, reference in rows:
        entry = folded.setdefault(
            (customer_id, code), {"customer": customer_id, "product": code, "items": {},
                                  "waivers": []}
        )  # fmt: skip
        entry["items"].setdefault(item, []).append(value)
        if reference not in entry["waivers"]:
            entry["waivers"].append(reference)
    for entry in folded.values():
        entry["items"] = {k: combine(k, v) for k, v in entry["items"].items()}
    return list(folded.values())


def changes(customer: str | None = None, since: int = 0):
    """Grants and reverts in the order they happened, after the change numbered `since`."""
    found = EntitlementChange.objects.filter(id__gt=since).select_related(
        "waiver", "customer", "product"
    )
    if customer:
        found = found.filter(customer__external_id=customer)
    return found.order_by("id")


def as_row(c: EntitlementChange) -> dict[str, Any]:
    return {
        "id": c.id,
        "at": c.at.isoformat(),
        "change": c.change,
        "waiver": c.waiver.reference,
        "customer": c.customer.external_id,
        "product": c.product.code,
        "item": c.item,
        "value": c.value,
    }


def to_csv(found) -> str:
    """Changes as CSV (a list value, such as features, is joined with ';')."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS)
    writer.writeheader()
    for c in found:
        row = as_row(c)
        if isinstance(row["value"], list):
            row["value"] = ";".join(row["value"])
        writer.writerow(cells.record(row))
    return out.getvalue()
