"""Reading a request body (API, CLI, e-mail, form) into checked, resolved values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.directory.models import Customer, Product

SECTIONS = ("scope", "financials", "justification", "evidence")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Scope(_Body):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    seats: int | None = Field(default=None, ge=0)
    quantity: int | None = Field(default=None, ge=0)
    discount_pct: float | None = Field(default=None, ge=0, le=100)
    features: list[str] = []


class Financials(_Body):
    currency: str = Field(default="", max_length=3)
    list_value: float | None = Field(default=None, ge=0)
    concession: float | None = Field(default=None, ge=0)
    revenue_effect: float | None = None


class Justification(_Body):
    benefit: str = ""
    alternatives: str = ""
    customer_impact: str = ""
    why_not_standard: str = ""


class Outcome(_Body):
    metric: str = Field(min_length=1)
    target: str | float


class WaiverBody(_Body):
    """The canonical request body of SPEC §7."""

    type: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    products: list[str] = Field(min_length=1)
    license_type: str = Field(min_length=1)
    region: str = Field(min_length=1)
    start: date
    end: date
    scope: Scope = Scope()
    financials: Financials = Financials()
    justification: Justification = Justification()
    evidence: dict[str, str] = {}
    outcomes: list[Outcome] = []
    control_owner: str | None = None
    submit: bool = False


@dataclass
class Resolved:
    """A checked body with its references looked up."""

    body: WaiverBody
    customer: Customer
    products: list[Product]
    control_owner: User | None

    def fields(self) -> dict[str, Any]:
        """Model field values for a Waiver."""
        b = self.body
        return {
            "type": b.type,
            "customer": self.customer,
            "license_type": b.license_type,
            "region": b.region,
            "start": b.start,
            "end": b.end,
            "scope": b.scope.model_dump(exclude_none=True),
            "financials": b.financials.model_dump(exclude_none=True),
            "justification": b.justification.model_dump(),
            "evidence": dict(b.evidence),
            "outcomes": [o.model_dump() for o in b.outcomes],
            "control_owner": self.control_owner,
        }


def read(data: dict[str, Any]) -> Resolved:
    """Check `data` and resolve its customer, products and people, or raise Invalid naming
    every problem at once."""
    if not isinstance(data, dict):
        raise Invalid([Problem("body", "invalid", "the request must be a JSON object")])
    try:
        body = WaiverBody.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        named = {p.field for p in problems}
        # The period and the references are checked too, where their own values are sound.
        more = _period_problems(data.get("start"), data.get("end"))
        more += _lookup(data.get("customer"), data.get("products"), data.get("control_owner"))[0]
        raise Invalid(problems + [p for p in more if p.field not in named]) from None
    problems = _period_problems(body.start, body.end)
    lookup_problems, customer, products, control_owner = _lookup(
        body.customer, body.products, body.control_owner
    )
    if problems + lookup_problems:
        raise Invalid(problems + lookup_problems)
    return Resolved(body, customer, products, control_owner)


def _lookup(customer_id: Any, codes: Any, username: Any):
    """(problems, customer, products, control owner) for the references a body makes."""
    problems = []
    customer = None
    if isinstance(customer_id, str) and customer_id:
        customer = Customer.objects.filter(external_id=customer_id).first()
        if customer is None:
            problems.append(
                Problem(
                    "customer", "unknown_customer", f"no customer with external id '{customer_id}'"
                )
            )
    codes = [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []
    found = {p.code: p for p in Product.objects.filter(code__in=codes)}
    for i, code in enumerate(codes):
        if code not in found:
            problems.append(Problem(f"products[{i}]", "unknown_product", f"no product '{code}'"))
    if len(set(codes)) != len(codes):
        problems.append(Problem("products", "duplicate", "a product is listed twice"))
    control_owner = None
    if isinstance(username, str) and username:
        control_owner = User.objects.filter(username=username, is_active=True).first()
        if control_owner is None:
            problems.append(
                Problem("control_owner", "unknown_user", f"no active user named '{username}'")
            )
    return problems, customer, [found[c] for c in codes if c in found], control_owner


def _period_problems(start: Any, end: Any) -> list[Problem]:
    try:
        start, end = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError:
        return []  # a date that is not one is named by validation
    if end < start:
        return [Problem("end", "before_start", "end must not be before start")]
    return []


def body_of(waiver, products=None) -> dict[str, Any]:
    """A waiver written back as a request body, to merge changes into.

    `products` are the waiver's products when the caller already holds them.
    """
    if products is None:
        products = waiver.products.all()
    return {
        "type": waiver.type,
        "customer": waiver.customer.external_id,
        "products": sorted(p.code for p in products),
        "license_type": waiver.license_type,
        "region": waiver.region,
        "start": waiver.start.isoformat(),
        "end": waiver.end.isoformat(),
        "scope": dict(waiver.scope),
        "financials": dict(waiver.financials),
        "justification": dict(waiver.justification),
        "evidence": dict(waiver.evidence),
        "outcomes": list(waiver.outcomes),
        "control_owner": waiver.control_owner.username if waiver.control_owner else None,
    }


def merge(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`body` with `changes` applied; the sections (scope, financials, …) merge key by key."""
    if not isinstance(changes, dict):
        raise Invalid([Problem("body", "invalid", "the changes must be a JSON object")])
    merged = dict(body)
    for key, value in changes.items():
        if key in SECTIONS and isinstance(value, dict) and isinstance(body.get(key), dict):
            merged[key] = {**body[key], **value}
        else:
            merged[key] = value
    return merged


def _problem(error: dict[str, Any]) -> Problem:
    loc = error["loc"]
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    kind = error["type"]
    messages = {
        "missing": "is required",
        "extra_forbidden": "is not a known field",
        "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
        "date_parsing": "must be a date (YYYY-MM-DD)",
        "date_type": "must be a date (YYYY-MM-DD)",
        "too_short": "must not be empty",
    }
    code = {"missing": "required", "extra_forbidden": "unknown_field"}.get(kind, "invalid")
    return Problem(field or "body", code, messages.get(kind, error["msg"]))
