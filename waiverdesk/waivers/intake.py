"""Reading a request body (API, CLI, e-mail, form) into checked, resolved values."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from django.contrib.auth.models import User
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from waiverdesk.api.documented import enum, policy_types
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.typecheck import DEFAULT_LIST_BOUND
from waiverdesk.directory.models import Customer, Product

SECTIONS = ("scope", "financials", "justification", "evidence")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Bounds that every channel states and checks, so no value reaches a column, a JSON
# document or a policy condition that cannot hold it.
MONEY = 1e15  # a quadrillion in any currency
COUNT = 10_000_000  # seats, quantities
TEXT = 10_000  # justifications, evidence as text
ITEMS = DEFAULT_LIST_BOUND  # products, features: what the policy check assumes of a request
Amount = Annotated[float, Field(ge=0, le=MONEY, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=COUNT)]
Short = Annotated[str, Field(max_length=200)]
Long = Annotated[str, Field(max_length=TEXT)]
# What evidence is called: usage_forecast, business_impact_analysis.
EVIDENCE_KIND = r"^[a-z][a-z0-9_]{0,59}$"
Kind = Annotated[str, Field(pattern=EVIDENCE_KIND)]
Code = Annotated[str, Field(min_length=1, max_length=64)]


class Scope(_Body):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    seats: Count | None = None
    quantity: Count | None = None
    discount_pct: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    features: list[Annotated[str, Field(max_length=100)]] = Field(default=[], max_length=ITEMS)

    @model_validator(mode="after")
    def _short_extras(self):
        for name, value in (self.model_extra or {}).items():
            fits = isinstance(value, str | bool | None) and len(str(value)) <= 200
            fits = fits or (isinstance(value, int | float) and math.isfinite(value)
                            and abs(value) <= MONEY)  # fmt: skip
            if len(name) > 60 or not fits:
                raise ValueError(f"scope.{name[:60]}: a short text or a number")
        return self


class Financials(_Body):
    currency: str = Field(default="", pattern=r"^([A-Za-z]{3})?$")
    list_value: Amount | None = None
    concession: Amount | None = None
    revenue_effect: float | None = Field(default=None, ge=-MONEY, le=MONEY, allow_inf_nan=False)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class Justification(_Body):
    benefit: Long = ""
    alternatives: Long = ""
    customer_impact: Long = ""
    why_not_standard: Long = ""


class Outcome(_Body):
    metric: Short = Field(min_length=1)
    target: Short | float

    @field_validator("target")
    @classmethod
    def _finite(cls, value: str | float) -> str | float:
        if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MONEY):
            raise ValueError("must be a finite number")
        return value


class WaiverBody(_Body):
    """The canonical request body of SPEC §7."""

    type: str = Field(min_length=1, max_length=60, json_schema_extra=enum(policy_types))
    customer: Code
    products: list[Code] = Field(min_length=1, max_length=ITEMS)
    license_type: str = Field(min_length=1, max_length=40)
    region: str = Field(min_length=1, max_length=16)
    start: date
    end: date
    # Factories, not default values: a default object in the OpenAPI document makes client
    # generators drop the operation.
    scope: Scope = Field(default_factory=Scope)
    financials: Financials = Field(default_factory=Financials)
    justification: Justification = Field(default_factory=Justification)
    evidence: dict[Kind, Long] = Field(default_factory=dict, max_length=20)
    outcomes: list[Outcome] = Field(default_factory=list, max_length=20)
    control_owner: str | None = Field(default=None, max_length=150)
    submit: bool = False


SECTION_MODELS = {"scope": Scope, "financials": Financials, "justification": Justification,
                  "outcomes": Outcome}  # fmt: skip


def max_length(path: str) -> int | None:
    """The most characters validation takes at `path` (a form field's name), to state it."""
    section, _, name = path.rpartition(".")
    model = SECTION_MODELS.get(section, WaiverBody) if section else WaiverBody
    info = model.model_fields.get(name)
    limits = [m.max_length for m in (info.metadata if info else []) if hasattr(m, "max_length")]
    return limits[0] if limits else None


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
    nul = [Problem(path, "invalid", "must not contain a NUL character") for path in _nuls(data)]
    try:
        body = WaiverBody.model_validate(data)
    except ValidationError as exc:
        problems = nul + [problem_of(e) for e in exc.errors()]
        named = {p.field for p in problems}
        # The period and the references are checked too, where their own values are sound.
        more = _period_problems(data.get("start"), data.get("end"))
        more += _lookup(data.get("customer"), data.get("products"), data.get("control_owner"))[0]
        raise Invalid(problems + [p for p in more if p.field not in named]) from None
    problems = nul + _period_problems(body.start, body.end)
    lookup_problems, customer, products, control_owner = _lookup(
        body.customer, body.products, body.control_owner
    )
    if problems + lookup_problems:
        raise Invalid(problems + lookup_problems)
    return Resolved(body, customer, products, control_owner)


def partial(data: Any) -> Resolved | None:
    """What of a refused body is sound, with its unsound values left out: enough to evaluate
    the policy on, so that its problems are told with the body's. None when its type, dates
    or products leave nothing to evaluate."""
    if not isinstance(data, dict):
        return None
    sound = copy.deepcopy(data)
    try:
        WaiverBody.model_validate(sound)
    except ValidationError as exc:
        for error in exc.errors():
            _drop(sound, error["loc"])
    sound = {"customer": "-", "license_type": "-", "region": "-", **sound}
    try:
        body = WaiverBody.model_validate(sound)
    except ValidationError:
        return None
    _problems, customer, products, control_owner = _lookup(
        body.customer, body.products, body.control_owner
    )
    if not products or body.end < body.start:
        return None
    return Resolved(body, customer or Customer(external_id=body.customer), products, control_owner)


def _drop(data: Any, loc: tuple) -> None:
    """Leave out of `data` the value at `loc` (or the list that holds it)."""
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return
        if part != loc[-1] and isinstance(data[part], dict):
            data = data[part]
        else:
            del data[part]
            return


def _nuls(value: Any, path: str = "") -> list[str]:
    """The places of `value` (a parsed body) whose text holds a NUL character."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nuls(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nuls(v, f"{path}[{i}]")]
    return []


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


def problem_of(error: dict[str, Any]) -> Problem:
    """A validation error of a request body in plain words, at its field."""
    field, loc = "", error["loc"]
    if loc and loc[-1] == "[key]":  # a dict's key: the problem is the dict's (evidence)
        loc = loc[:-2]
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error" and str(ctx.get("error", "")).startswith("scope."):
        field, _, message = str(ctx["error"]).partition(": ")
        return Problem(field, "invalid", message)
    code = {"missing": "required", "extra_forbidden": "unknown_field"}.get(kind, "invalid")
    return Problem(field or "body", code, describe(kind, ctx, error["msg"], field))


def describe(kind: str, ctx: dict[str, Any], fallback: str, field: str = "") -> str:
    """What a validation error of `kind` means, for a person."""
    limit = ctx.get("le", ctx.get("ge", ctx.get("max_length", ctx.get("min_length"))))
    shown = f"{limit:,}" if isinstance(limit, int | float) else limit
    if kind == "value_error" and ctx.get("error"):
        return str(ctx["error"])
    if field.endswith("currency") and kind == "string_pattern_mismatch":
        return "must be a currency code such as EUR, USD or JPY"
    if field.startswith("evidence") and kind == "string_pattern_mismatch":
        return "name the evidence in lower case, e.g. usage_forecast"
    messages = {
        "missing": "is required",
        "extra_forbidden": "is not a known field",
        "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
        "date_parsing": "must be a date (YYYY-MM-DD)",
        "date_type": "must be a date (YYYY-MM-DD)",
        "too_short": "must not be empty",
        "string_too_short": "must not be empty",
        "string_too_long": f"must be at most {shown} characters",
        "too_long": f"may hold at most {shown} items",
        "greater_than_equal": f"must be {shown} or more",
        "less_than_equal": f"must be {shown} or less",
        "finite_number": "must be a finite number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "string_type": "must be text",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "enum": f"must be one of {ctx.get('expected', '')}".replace("'", ""),
        "literal_error": f"must be one of {ctx.get('expected', '')}".replace("'", ""),
    }
    return messages.get(kind, fallback)
