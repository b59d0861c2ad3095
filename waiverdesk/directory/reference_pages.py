"""Customers, products and exchange rates, for admins: find them, add them, change a
customer's name, region, account owner and contact (a new account owner is audited and
re-checks the customer's open requests, in `services.update_customer`), change a product's
family and risk class, import rates. Every change is one service call, as from the command
line or the API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect, render

from waiverdesk import clock
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.waivers.request_form import REGIONS
from waiverdesk.web import page

from . import rates, services
from .models import Customer, ExchangeRate, Product

SHOWN = 200


def _admin(request: HttpRequest) -> None:
    services.require_role(request.user, {"admin"}, "administer customers and products")


def _owners():
    return User.objects.filter(is_active=True).order_by("username")


@page
def customers(request: HttpRequest):
    """The customers; a POST adds one."""
    _admin(request)
    problems, given = [], {}
    if request.method == "POST":
        given = {k: request.POST.get(k, "").strip() for k in
                 ("external_id", "name", "region", "account_owner", "contact_email")}  # fmt: skip
        try:
            services.add_customer(given["external_id"], given["name"], given["region"],
                                  given["account_owner"], by=request.user.username,
                                  contact_email=given["contact_email"])  # fmt: skip
        except Invalid as invalid:
            problems = invalid.problems
        except Denied as denied:
            problems = [_as_problem("external_id", denied)]
        else:
            messages.success(request, f"Customer {given['external_id']} added")
            return redirect("customer-admin", external_id=given["external_id"])
    text = request.GET.get("q", "").strip()[:100]
    found = Customer.objects.select_related("account_owner").order_by("external_id")
    if text:
        found = found.filter(Q(external_id__icontains=text) | Q(name__icontains=text))
    return render(request, "directory/customers.html", {
        "customers": found[:SHOWN], "count": found.count(), "q": text, "regions": REGIONS,
        "owners": _owners(), "given": given, "problems": problems,
        "problem_at": {p.field: p.message for p in problems}},
        status=422 if problems else 200)  # fmt: skip


@page
def customer(request: HttpRequest, external_id: str):
    """One customer's details; a POST changes those given."""
    _admin(request)
    found = get_object_or_404(Customer.objects.select_related("account_owner"),
                              external_id=external_id)  # fmt: skip
    problems = []
    if request.method == "POST":
        changes = {k: request.POST.get(k, "").strip()
                   for k in services.CUSTOMER_FIELDS if k in request.POST}  # fmt: skip
        try:
            services.update_customer(external_id, changes, by=request.user.username)
        except Invalid as invalid:
            problems = invalid.problems
        except Denied as denied:
            problems = [_as_problem("account_owner", denied)]
        else:
            messages.success(request, f"Customer {external_id} saved")
            return redirect("customer-admin", external_id=external_id)
    values = {
        "region": found.region,
        "contact_email": found.contact_email,
        "account_owner": found.account_owner.username if found.account_owner else "",
    }
    if problems:  # what was typed, kept
        values |= {k: request.POST.get(k, "") for k in values}
    return render(request, "directory/customer.html", {
        "customer": found, "customer_values": values, "regions": REGIONS,
        "owners": _owners(), "problems": problems,
        "problem_at": {p.field: p.message for p in problems}},
        status=422 if problems else 200)  # fmt: skip


@page
def products(request: HttpRequest):
    """The products; a POST adds one, or changes the one of that code."""
    _admin(request)
    problems, given = [], {}
    if request.method == "POST":
        given = {k: request.POST.get(k, "").strip() for k in
                 ("code", "name", "family", "risk_class")}  # fmt: skip
        try:
            services.add_product(given["code"], given["name"], given["family"],
                                 given["risk_class"], by=request.user.username)  # fmt: skip
        except Invalid as invalid:
            problems = invalid.problems
        else:
            messages.success(request, f"Product {given['code']} saved")
            return redirect("products-admin")
    return render(request, "directory/products.html", {
        "products": Product.objects.order_by("family", "code"), "given": given,
        "risk_classes": Product.RiskClass.values, "problems": problems,
        "problem_at": {p.field: p.message for p in problems}},
        status=422 if problems else 200)  # fmt: skip


def _as_problem(field: str, denied: Denied) -> Problem:
    return Problem(field, denied.code, denied.message)


@page
def exchange_rates(request: HttpRequest):
    """The rates in force today, one per currency; a POST imports a CSV (a treasury export
    or an ECB reference-rate file), every bad line named at once, nothing kept if any is."""
    _admin(request)
    problems = []
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise Invalid([Problem("file", "required", "choose a CSV file of rates")])
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise Invalid([Problem("file", "not_text", "the file is not UTF-8 text")]) from None
            rows = rates.read(text, rates.base_currency())
            counts = rates.store(rows, request.user.username, source=upload.name[:200])
        except Invalid as invalid:
            problems = invalid.problems
        else:
            said = (f"{len(rows)} rates read: {counts['added']} added, {counts['changed']} "
                    f"corrected, {counts['unchanged']} already known")  # fmt: skip
            messages.success(request, said)
            return redirect("rates-admin")
    today, seen, current = clock.now().date(), set(), []
    for rate in ExchangeRate.objects.filter(day__lte=today).order_by("base", "currency", "-day"):
        if (rate.base, rate.currency) not in seen:
            seen.add((rate.base, rate.currency))
            current.append(rate)
    return render(request, "directory/rates.html", {
        "rates": current, "today": today, "base": rates.base_currency(), "problems": problems},
        status=422 if problems else 200)  # fmt: skip
