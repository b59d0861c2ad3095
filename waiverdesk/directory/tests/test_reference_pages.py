"""Customers and products administered in the browser: each change one service call with
its audit entry; bad input refused at its field in words, nothing stored."""

import json

from django.core.files.uploadedfile import SimpleUploadedFile

from waiverdesk.audit.models import AuditEntry
from waiverdesk.directory.models import Customer, ExchangeRate, Product
from waiverdesk.testing import NOW, big_discount_body, client_for, pseudonym
from waiverdesk.waivers import services


def test_an_admin_adds_a_customer_and_every_problem_is_said_at_its_field(world):
    adam = client_for("adam")
    bad = adam.post("/manage/customers/", {"external_id": "", "contact_email": "not mail",
                                           "account_owner": "nobody-here"})  # fmt: skip
    assert bad.status_code == 422
    html = bad.content.decode()
    assert "a customer needs its external id" in html and 'href="#id_external_id"' in html
    assert Customer.objects.count() == 2
    made = adam.post("/manage/customers/", {"external_id": "INITECH-003", "name": "Initech",
                                            "region": "EMEA", "account_owner": "mark"})  # fmt: skip
    assert made.status_code == 302
    assert Customer.objects.get(external_id="INITECH-003").account_owner.username == "mark"
    again = adam.post("/manage/customers/", {"external_id": "INITECH-003"})
    assert again.status_code == 422 and "exists" in again.content.decode()
    listed = adam.get("/manage/customers/?q=initech").content.decode()
    assert "1 customer found" in listed and "INITECH-003" in listed


def test_a_new_account_owner_set_in_the_browser_is_audited_and_voids_their_approvals(world):
    # A big discount: after the manager's approval it still waits on the deal desk.
    body = big_discount_body(customer="GLOBEX-002", submit=True)
    waiver = services.create(body, world["rita"], now=NOW)
    services.decide(waiver.reference, world["mona"], "approve", now=NOW)
    adam = client_for("adam")
    form = {"name": "Globex", "region": "AMER", "account_owner": "mona", "contact_email": ""}
    answer = adam.post("/manage/customers/GLOBEX-002/", form)
    assert answer.status_code == 302
    assert Customer.objects.get(external_id="GLOBEX-002").account_owner.username == "mona"
    change = AuditEntry.objects.get(action="customer.changed", actor=pseudonym("adam"))
    assert json.loads(change.payload)["approvals_voided_on"] == [waiver.reference]
    page = adam.get("/manage/customers/GLOBEX-002/").content.decode()
    assert '<option value="mona" selected>' in page


def test_an_admin_adds_and_changes_a_product(world):
    adam = client_for("adam")
    bad = adam.post("/manage/products/", {"code": "X-1", "family": "", "risk_class": "huge"})
    assert bad.status_code == 422
    assert "a product needs its family" in bad.content.decode()
    assert "must be low, medium or high" in bad.content.decode()
    assert not Product.objects.filter(code="X-1").exists()
    adam.post("/manage/products/", {"code": "X-1", "name": "X", "family": "Data",
                                    "risk_class": "high"})  # fmt: skip
    adam.post("/manage/products/", {"code": "X-1", "name": "X", "family": "Data",
                                    "risk_class": "low"})  # fmt: skip
    assert Product.objects.get(code="X-1").risk_class == "low"
    assert AuditEntry.objects.filter(action="product.changed", actor=pseudonym("adam")).exists()


def test_an_admin_imports_rates_from_a_file_and_sees_those_in_force(world):
    adam = client_for("adam")
    bad = SimpleUploadedFile("rates.csv", b"date,currency,rate\n2026-13-01,USD,1.1\n,GBP,x\n")
    refused = adam.post("/manage/rates/", {"file": bad})
    assert refused.status_code == 422 and not ExchangeRate.objects.exists()
    assert refused.content.decode().count('<li><a href="#id_') >= 2  # every bad line named
    good = SimpleUploadedFile("treasury.csv", b"date,currency,rate\n2026-11-02,USD,1.0850\n"
                                              b"2026-11-02,GBP,0.8700\n")  # fmt: skip
    done = adam.post("/manage/rates/", {"file": good}, follow=True).content.decode()
    assert "2 rates read: 2 added" in done
    table = done.split('id="rates"')[1].split("</table>")[0]
    assert "1.085 USD" in table and "0.87 GBP" in table and "treasury.csv" in table
    assert AuditEntry.objects.filter(action="rates.imported", actor=pseudonym("adam")).exists()
    assert adam.post("/manage/rates/", {}).status_code == 422  # no file: said, not a 500
