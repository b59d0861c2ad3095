"""Governance at scale: each pattern report over many waivers, and the audit trail's signed
Merkle checkpoint over many entries, an inclusion proof's size and its verification.

    python bench/governance.py --engine sqlite|postgresql [--waivers 1000000] [--entries 1000000]

The waivers are written in bulk, in the order they were filed over two years, for 10,000
customers, by 50 requesters and 30 approvers, with concessions that crowd under the deal
desk's 25,000 and some renewal chains, so that every report has rows to find. Figures are
printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import start_django  # noqa: E402

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
TYPES = ["temporary_access", "temporary_access", "volume_discount", "term_extension",
         "seat_overage"]  # fmt: skip
STATUSES = ["active", "expired", "approved", "rejected", "in_review", "withdrawn", "terminated"]


def seed_waivers(count: int) -> None:
    from django.conf import settings
    from django.db import connection

    from waiverdesk.directory.models import Customer, Product
    from waiverdesk.directory.services import add_product, add_user
    from waiverdesk.policies import services as policies
    from waiverdesk.waivers.models import Waiver

    version = policies.publish(settings.DEFAULT_POLICY_FILE.read_text())
    requesters = [add_user(f"req{i}", ["requester"]) for i in range(50)]
    approvers = [add_user(f"mgr{i}", ["sales_manager"]) for i in range(30)]
    Customer.objects.bulk_create(
        Customer(external_id=f"C-{i:05d}", name=f"Customer {i}", region="AMER")
        for i in range(10_000)
    )
    customers = list(Customer.objects.values_list("pk", flat=True))
    for code, family in (("DB-ENT", "Database"), ("AN-EDGE", "Analytics"), ("SEC-GW", "Security")):
        add_product(code, code, family, "medium")
    products = list(Product.objects.values_list("pk", flat=True))
    rng = random.Random(7)
    for first in range(0, count, 10_000):
        rows = []
        for i in range(first, min(first + 10_000, count)):
            # In the order they were filed, as a live database holds them.
            submitted = NOW - timedelta(minutes=(count - i) * 2 * 365 * 24 * 60 // count)
            start = submitted.date() + timedelta(days=rng.randrange(30))
            concession = rng.choice([rng.randrange(300_000), rng.randrange(22_500, 25_000)])
            status = rng.choice(STATUSES)
            renewals = rng.choice([0] * 30 + [1, 1, 2, 3])
            rows.append(Waiver(
                reference=f"WVR-B-{i:07d}", kind="renewal" if renewals else "new",
                type=rng.choice(TYPES), status=status, policy_version=version,
                requester=requesters[i % 50], control_owner=requesters[(i + 1) % 50],
                customer_id=customers[rng.randrange(len(customers))], license_type="subscription",
                region="AMER", start=start, end=start + timedelta(days=rng.randrange(20, 200)),
                financials={"currency": "EUR", "list_value": 400_000, "concession": concession},
                concession_base=concession,
                risk={"overall": "low"}, renewal_count=renewals, created_at=submitted,
                updated_at=submitted, submitted_at=submitted,
                decided_at=None if status in ("in_review", "withdrawn") else submitted,
                decision={"rejected": "rejected", "in_review": "", "withdrawn": ""}.get(
                    status, "approved"),
                activated_at=datetime.combine(start, datetime.min.time(), UTC)
                if status in ("active", "expired", "terminated") else None,
                scope={"seats": rng.randrange(1, 500)},
            ))  # fmt: skip
        Waiver.objects.bulk_create(rows)
    with connection.cursor() as cursor:  # renewals follow the waiver before them
        cursor.execute(
            "UPDATE waivers_waiver SET predecessor_id = id - 1 "
            "WHERE renewal_count > 0 AND id > (SELECT MIN(id) FROM waivers_waiver)"
        )
        # Filed once: in round 1, as the route steps below (the planner reads these figures).
        cursor.execute("UPDATE waivers_waiver SET round = 1 WHERE submitted_at IS NOT NULL")
        jsonb = "'[]'::jsonb" if connection.vendor == "postgresql" else "'[]'"
        cursor.execute(
            "INSERT INTO waivers_routestep (waiver_id, round, position, tier, role, required, "
            "status, reasons, sla_hours, stage, delegable, escalate_to, opened_at, closed_at) "
            f"SELECT id, 1, 0, 'manager', 'sales_manager', 1, 'approved', {jsonb}, 24, 0, "
            f"{'true' if connection.vendor == 'postgresql' else 1}, '', submitted_at, decided_at "
            "FROM waivers_waiver WHERE decided_at IS NOT NULL"
        )
        first_approver = approvers[0].pk
        cursor.execute(
            "INSERT INTO waivers_approval (step_id, waiver_id, round, user_id, decision, comment, "
            f"at) SELECT s.id, s.waiver_id, 1, {first_approver} + (s.waiver_id % 30), "
            "CASE WHEN w.status = 'rejected' THEN 'reject' ELSE 'approve' END, '', s.closed_at "
            "FROM waivers_routestep s JOIN waivers_waiver w ON w.id = s.waiver_id"
        )
        cursor.execute(
            "INSERT INTO waivers_waiver_products (waiver_id, product_id) "
            f"SELECT id, {min(products)} + (id % {len(products)}) FROM waivers_waiver"
        )
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")  # as autovacuum leaves a live database


def bench_patterns(count: int) -> None:
    from waiverdesk.governance import patterns
    from waiverdesk.policies import services as policies
    from waiverdesk.waivers.models import Waiver

    t0 = time.perf_counter()
    seed_waivers(count)
    print(f"  {count:,} waivers written in {time.perf_counter() - t0:.0f} s")
    policy = policies.compiled(policies.active_version())
    rules = policy.document.patterns
    recent = Waiver.objects.filter(submitted_at__gte=NOW - timedelta(days=rules.window_days))
    reports = {
        "repeated (customer, type)": lambda: patterns.repeated(recent, rules),
        "renewal chains": lambda: patterns.renewal_chains(rules),
        "near a threshold": lambda: patterns.near_thresholds(recent, rules, policy),
        "requester-approver pairs": lambda: patterns.approval_pairs(recent, rules),
        "type volume": lambda: patterns.type_volume(recent, rules),
        "all five, as the page shows them": lambda: patterns.findings(NOW, policy),
    }
    for name, report in reports.items():
        times, found = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            found = report()
            times.append(time.perf_counter() - t0)
        print(f"  pattern report {name}: median {statistics.median(times) * 1000:,.0f} ms "
              f"(min {min(times) * 1000:,.0f}), {len(found)} findings")  # fmt: skip


def bench_checkpoint(entries: int) -> None:
    from django.db import transaction

    from waiverdesk.audit import services as audit
    from waiverdesk.core import verifier

    t0 = time.perf_counter()
    at = NOW
    for first in range(0, entries, 20_000):
        with transaction.atomic():
            audit.append_many([
                ("bench", "waiver.decided", "waiver", f"WVR-B-{i % 100_000:07d}",
                 {"step": "manager", "decision": "approve", "n": i}, at)
                for i in range(first, min(first + 20_000, entries))
            ])  # fmt: skip
    print(f"  {entries:,} audit entries written in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    taken = audit.checkpoint()
    print(f"  signed checkpoint over {taken.seq:,} entries (the whole tree): "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    with transaction.atomic():
        audit.append_many([("bench", "waiver.decided", "waiver", "WVR-B-0000001", {"n": i}, at)
                           for i in range(1000)])  # fmt: skip
    t0 = time.perf_counter()
    taken = audit.checkpoint()
    print(f"  next checkpoint, 1,000 entries later (extends the last): "
          f"{(time.perf_counter() - t0) * 1000:,.0f} ms")  # fmt: skip
    t0 = time.perf_counter()
    proof = audit.prove("WVR-B-0000001")
    proving = time.perf_counter() - t0
    size = len(json.dumps(proof))
    path = len(proof["entries"][0]["proof"])
    t0 = time.perf_counter()
    result = verifier.verify_proof(proof)
    checking = time.perf_counter() - t0
    assert result.ok, result.message
    n = len(proof["entries"])
    print(f"  proof of {n} entries of one waiver in a tree of {taken.seq:,}: made in "
          f"{proving:.1f} s, {path} hashes ({path * 32} bytes) per entry, {size:,} bytes "
          f"as JSON; verified in {checking * 1000:.1f} ms ({checking / n * 1e6:.0f} µs "
          "an entry, signature included)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--waivers", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    start_django(args.engine)
    print(f"== governance on {args.engine}")
    bench_patterns(args.waivers)
    bench_checkpoint(args.entries)


if __name__ == "__main__":
    main()
