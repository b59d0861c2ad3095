"""Usage ingestion rate (records/s) of the file import (CSV, by COPY on PostgreSQL; NDJSON)
and the API, the billing import (invoice lines/s, the same set-based path), and the leakage
scan.

python bench/usage.py --engine sqlite|postgresql [--records 1000000] [--billing-lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import start_django  # noqa: E402

CUSTOMERS, PRODUCTS = 50, 12


def reference_data() -> None:
    from waiverdesk.directory.models import Customer, Product

    Customer.objects.bulk_create(
        Customer(external_id=f"C-{i:03d}", name=f"Customer {i}") for i in range(CUSTOMERS)
    )
    Product.objects.bulk_create(
        Product(code=f"P-{i:02d}", name=f"Product {i}", family="Analytics") for i in range(PRODUCTS)
    )


FIELDS = ("record_id", "customer", "product", "metric", "quantity", "period_start", "period_end")


def write_file(path: Path, count: int, kind: str = "csv") -> None:
    with path.open("w") as out:
        if kind == "csv":
            out.write("record_id,customer,product,metric,quantity,period_start,period_end\n")
        for i in range(count):
            month = f"2027-{1 + i % 12:02d}"
            values = (f"r{i}", f"C-{i % CUSTOMERS:03d}", f"P-{i % PRODUCTS:02d}", "seats",
                      i % 97, f"{month}-01", f"{month}-28")  # fmt: skip
            if kind == "csv":
                out.write(",".join(map(str, values)) + "\n")
            else:
                out.write(json.dumps(dict(zip(FIELDS, values, strict=True))) + "\n")


def bench_file(count: int, kind: str) -> None:
    from waiverdesk.usage import services
    from waiverdesk.usage.models import UsageRecord

    path = Path(tempfile.mkdtemp()) / f"usage.{kind}"
    write_file(path, count, kind)
    t0 = time.perf_counter()
    with path.open("rb") as handle:
        report = services.import_file(handle, kind, datetime.now(UTC))
    elapsed = time.perf_counter() - t0
    assert report.accepted == count, report
    print(f"  file import ({kind}): {count:,} records in {elapsed:.1f} s "
          f"({count / elapsed:,.0f}/s)")  # fmt: skip
    UsageRecord.objects.all().delete()  # for the next import


def bench_billing(count: int) -> None:
    """`billing import` of a CSV export of `count` invoice lines (the file as Excel writes
    it: a BOM, CRLF, headers in words)."""
    from waiverdesk.billing import services
    from waiverdesk.billing.models import InvoiceLine

    path = Path(tempfile.mkdtemp()) / "invoices.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        out.write("Invoice,Line,Customer,Product,Period start,Period end,Quantity,Unit price,"
                  "Discount %\r\n")  # fmt: skip
        for i in range(count):
            month = f"2027-{1 + i % 12:02d}"
            out.write(f"INV-{i // 10},{1 + i % 10},C-{i % CUSTOMERS:03d},P-{i % PRODUCTS:02d},"
                      f"{month}-01,{month}-28,{i % 97},12.50,{i % 30}\r\n")  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    with path.open("rb") as handle:
        report = services.import_lines(handle, datetime.now(UTC))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert report.accepted == count, report.rejected[:3]
    print(f"  billing import (csv): {count:,} lines in {elapsed:.1f} s ({count / elapsed:,.0f}/s; "
          f"{cpu:.1f} s CPU in this process)")  # fmt: skip
    InvoiceLine.objects.all().delete()


def bench_api(batches: int, size: int = 5000) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    from waiverdesk.api.services import create_token
    from waiverdesk.directory.services import add_user

    ivan = add_user("ivan", ["implementer"])
    token = create_token(User.objects.get(pk=ivan.pk), "meter", ["write"])[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    bodies = [
        json.dumps({"records": [
            {"record_id": f"api{b}-{i}", "customer": f"C-{i % CUSTOMERS:03d}",
             "product": f"P-{i % PRODUCTS:02d}", "metric": "seats", "quantity": i % 97,
             "timestamp": "2027-03-04T10:00:00Z"}
            for i in range(size)
        ]})
        for b in range(batches)
    ]  # fmt: skip
    t0 = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/usage", body, content_type="application/json")
        assert response.json()["accepted"] == size, response.content[:300]
    elapsed = time.perf_counter() - t0
    total = batches * size
    print(f"  API: {total:,} records in batches of {size:,}: {total / elapsed:,.0f} records/s")


def bench_scan(records: int, accounts: int = 1000) -> None:
    """The leakage scan: one active exception per account, `records` usage records spread
    over the accounts, 12 products and a year."""
    from django.conf import settings
    from django.db import connection

    from waiverdesk.directory import services as directory
    from waiverdesk.directory.models import Customer, Product
    from waiverdesk.entitlements.models import EntitlementChange
    from waiverdesk.policies import services as policies
    from waiverdesk.usage import utilization
    from waiverdesk.waivers.models import Waiver

    version = policies.publish(settings.DEFAULT_POLICY_FILE.read_text())
    rita = directory.add_user("rita", ["requester"])
    olga = directory.add_user("olga", ["control_owner"])
    Customer.objects.bulk_create(
        Customer(external_id=f"S-{i:04d}", name=f"Scanned {i}") for i in range(accounts)
    )
    customers = list(Customer.objects.filter(external_id__startswith="S-").order_by("id"))
    products = list(Product.objects.order_by("id"))
    now = datetime(2027, 1, 1, tzinfo=UTC)
    waivers = Waiver.objects.bulk_create(
        Waiver(reference=f"WVR-2027-{i:05d}", kind="new", type="temporary_access",
               status="active", policy_version=version, requester=rita, control_owner=olga,
               customer=c, license_type="subscription", region="AMER",
               start=datetime(2027, 3, 1).date(), end=datetime(2027, 8, 31).date(),
               scope={"seats": 50}, outcomes=[{"metric": "seats", "target": 40}],
               created_at=now, updated_at=now)
        for i, c in enumerate(customers)
    )  # fmt: skip
    waivers = list(Waiver.objects.filter(customer__in=customers).order_by("id"))
    Waiver.products.through.objects.bulk_create(
        Waiver.products.through(waiver=w, product=products[i % len(products)])
        for i, w in enumerate(waivers)
    )
    EntitlementChange.objects.bulk_create(
        EntitlementChange(waiver=w, customer=w.customer, product=products[i % len(products)],
                          change="grant", item="seats", value=50, at=now)
        for i, w in enumerate(waivers)
    )  # fmt: skip
    first_customer, first_product = customers[0].pk, products[0].pk
    t0 = time.perf_counter()
    days = "date '2027-01-01' + (i % 365)"
    series = (
        f"generate_series(1, {records}) AS i"
        if connection.vendor == "postgresql"
        else f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
        f"WHERE i < {records}) SELECT i FROM s)"
    )
    if connection.vendor == "sqlite":
        days = "date('2027-01-01', '+' || (i % 365) || ' days')"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO usage_usagerecord (record_id, customer_id, product_id, metric, "
            "quantity, period_start, period_end, received_at) "
            f"SELECT 'g' || i, {first_customer} + (i % {accounts}), "
            f"{first_product} + (i % {len(products)}), 'seats', i % 97, {days}, {days}, "
            f"'2027-01-01' FROM {series}"
        )
        cursor.execute("ANALYZE")  # as autovacuum would, before anyone reads them
    print(f"  (wrote {records:,} usage records in {time.perf_counter() - t0:.0f} s)")
    t0 = time.perf_counter()
    found = utilization.scan(datetime(2027, 9, 15, tzinfo=UTC), dry_run=True)
    elapsed = time.perf_counter() - t0
    print(f"  leakage scan: {accounts:,} exceptions over {records:,} usage records in "
          f"{elapsed:.1f} s ({len(found):,} findings)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--scan-records", type=int, default=10_000_000)
    parser.add_argument("--billing-lines", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["files"], help="the file imports alone")
    args = parser.parse_args()
    start_django(args.engine)
    reference_data()
    print(f"== usage ingestion on {args.engine}")
    bench_file(args.records, "csv")
    bench_file(args.records // 4, "ndjson")
    bench_billing(args.billing_lines)
    if args.only != "files":
        bench_api(20)
        bench_scan(args.scan_records)


if __name__ == "__main__":
    main()
