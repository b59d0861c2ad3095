"""/api/v1/customers and /api/v1/products: reference data, managed by admins."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict

from waiverdesk import clock
from waiverdesk.api.api import ERRORS, need

from . import rates, services
from .models import Customer, ExchangeRate, Product

router = Router(tags=["reference data"])


class CustomerIn(Schema):
    external_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    region: str = Field("", max_length=16)
    account_owner: str = Field("", max_length=150)
    contact_email: str = Field("", max_length=254)


class CustomerChange(Schema):
    """The fields to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    region: str | None = Field(None, max_length=16)
    account_owner: str | None = Field(None, max_length=150)
    contact_email: str | None = Field(None, max_length=254)


class CustomerOut(Schema):
    external_id: str
    name: str
    region: str
    account_owner: str | None
    contact_email: str


class ProductIn(Schema):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    family: str = Field(min_length=1, max_length=100)
    risk_class: str = "low"


class ProductOut(Schema):
    code: str
    name: str
    family: str
    risk_class: str


def require_admin(request) -> None:
    need(request, "admin")
    services.require_role(request.user, {"admin"}, "manage reference data")


def customer_out(c: Customer) -> dict:
    return {
        "external_id": c.external_id,
        "name": c.name,
        "region": c.region,
        "account_owner": c.account_owner.username if c.account_owner else None,
        "contact_email": c.contact_email,
    }


@router.get("/customers", operation_id="listCustomers", response={200: list[CustomerOut], **ERRORS})
def customers(request):
    need(request, "read")
    return [customer_out(c) for c in Customer.objects.select_related("account_owner")]


@router.post("/customers", operation_id="createCustomer", response={201: CustomerOut, **ERRORS})
def add_customer(request, body: CustomerIn):
    require_admin(request)
    customer = services.add_customer(
        body.external_id,
        body.name,
        body.region,
        body.account_owner,
        by=request.user.username,
        contact_email=body.contact_email,
    )
    return Status(201, customer_out(customer))


@router.patch(
    "/customers/{external_id}", operation_id="updateCustomer", response={200: CustomerOut, **ERRORS}
)
def change_customer(request, external_id: str, body: CustomerChange):
    """Change only the fields given; a new account owner is re-checked on open requests."""
    require_admin(request)
    changes = body.model_dump(exclude_unset=True)
    customer = services.update_customer(external_id, changes, by=request.user.username)
    return customer_out(customer)


class RateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    day: date
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    rate: Decimal = Field(ge=Decimal("1e-10"), lt=Decimal("1e13"), allow_inf_nan=False)
    base: str = Field(pattern=r"^[A-Z]{3}$")


class RatesIn(Schema):
    """Rates that take effect on their day: `rate` units of `currency` per unit of `base`."""

    model_config = ConfigDict(extra="forbid")

    rates: list[RateIn] = Field(min_length=1, max_length=10_000)


class RateOut(Schema):
    day: date
    currency: str
    rate: str
    base: str


@router.get("/rates", operation_id="listRates", response={200: list[RateOut], **ERRORS})
def list_rates(request, currency: str | None = None, on: date | None = None):
    """The rates in force on a day (today by default), one per base and currency."""
    need(request, "read")
    day = on or clock.now().date()
    latest = {}
    found = ExchangeRate.objects.filter(day__lte=day).order_by("base", "currency", "-day")
    for r in found.filter(currency=currency.upper()) if currency else found:
        latest.setdefault((r.base, r.currency), r)
    return [{"day": r.day, "currency": r.currency, "rate": f"{r.rate.normalize():f}",
             "base": r.base} for r in latest.values()]  # fmt: skip


@router.post("/rates", operation_id="addRates", response={201: dict, **ERRORS})
def add_rates(request, body: RatesIn):
    """Add rates (or correct a day's rate); no waiver's recorded rate changes."""
    require_admin(request)
    rows = [rates.Row(r.base, r.currency, r.day, r.rate) for r in body.rates]
    counts = rates.store(rows, request.user.username, source="api")
    return Status(201, counts)


@router.get("/products", operation_id="listProducts", response={200: list[ProductOut], **ERRORS})
def products(request):
    need(request, "read")
    return list(Product.objects.values("code", "name", "family", "risk_class"))


@router.post("/products", operation_id="createProduct", response={201: ProductOut, **ERRORS})
def add_product(request, body: ProductIn):
    require_admin(request)
    p = services.add_product(
        body.code, body.name, body.family, body.risk_class, by=request.user.username
    )
    return Status(
        201, {"code": p.code, "name": p.name, "family": p.family, "risk_class": p.risk_class}
    )
