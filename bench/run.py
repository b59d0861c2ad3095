"""Benchmarks for the waiver core: policy evaluation, audit appends, chain verification.

    python bench/run.py --engine sqlite|postgresql [--entries 100000]

Figures are printed, not asserted. A scratch database is made and dropped:
a SQLite file in a temporary directory, or `waiverdesk_bench` on the
PostgreSQL server of DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup_database(engine: str, keep: str = "") -> None:
    """A scratch database; on PostgreSQL, with `keep`, the database of that name, made only
    when missing (to be used again by the next run)."""
    if engine == "sqlite":
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
        return
    import psycopg

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    name = keep or "waiverdesk_bench"
    with psycopg.connect(server, autocommit=True) as conn:
        if not keep:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f"CREATE DATABASE {name}")
    os.environ["DATABASE_URL"] = server.rsplit("/", 1)[0] + "/" + name


def start_django(engine: str, keep: str = "") -> None:
    """A scratch database of `engine` (or the kept one, see setup_database), Django set up
    on it, migrated."""
    setup_database(engine, keep)
    os.environ.setdefault("WAIVERDESK_DATA_DIR", tempfile.mkdtemp())
    os.environ.setdefault("WAIVERDESK_LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "waiverdesk.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def bench_evaluation(rounds: int = 5000) -> None:
    from waiverdesk.core.evaluation import ProductFacts, RequestFacts, evaluate
    from waiverdesk.core.policy import load_policy

    policy = load_policy((ROOT / "policies" / "default.yaml").read_text())
    request = RequestFacts(
        type="volume_discount",
        customer="ACME-001",
        products=(ProductFacts("DB-ENT", "Database", "high"),),
        license_type="subscription",
        region="EMEA",
        start=date(2027, 2, 1),
        end=date(2028, 6, 30),
        scope={"seats": 1500, "quantity": 1500, "discount_pct": 35},
        financials={"list_value": 900000, "concession": 315000},
        justification={
            "benefit": "b",
            "alternatives": "a",
            "customer_impact": "c",
            "why_not_standard": "w",
        },
        evidence={"business_impact_analysis": "x"},
        outcomes=({"metric": "m", "target": 1},),
    )
    small = replace(
        request,
        type="temporary_access",
        products=(ProductFacts("AN", "Analytics", "low"),),
        end=date(2027, 3, 1),
        scope={"seats": 50},
        financials={"concession": 3000},
    )
    for name, facts in (("large volume discount (5 tiers)", request), ("short access", small)):
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            evaluate(policy, facts, date(2027, 1, 4))
            samples.append(time.perf_counter_ns() - t0)
        samples.sort()
        print(
            f"  evaluation, {name}: median {statistics.median(samples) / 1000:.0f} µs, "
            f"p90 {samples[int(len(samples) * 0.9)] / 1000:.0f} µs over {rounds} requests"
        )


def bench_audit(entries: int) -> None:
    from django.db import transaction

    from waiverdesk.audit import services as audit

    def append(n: int, per_transaction: int) -> float:
        t0 = time.perf_counter()
        for start in range(0, n, per_transaction):
            with transaction.atomic():
                for i in range(start, min(n, start + per_transaction)):
                    audit.append(
                        "bench",
                        "bench.event",
                        None,
                        {"i": i, "note": "x" * 40},
                        object_type="bench",
                        object_ref=f"B-{i % 977}",
                    )
        return n / (time.perf_counter() - t0)

    single = min(5000, entries)
    print(
        f"  audit append, one entry per transaction: {append(single, 1):,.0f} entries/s "
        f"({single:,} entries)"
    )
    rest = entries - single
    if rest > 0:
        print(
            f"  audit append, 500 entries per transaction: {append(rest, 500):,.0f} entries/s "
            f"({rest:,} entries)"
        )
    # The first pass reads freshly written pages; the second is what a routine check sees.
    for label in ("first pass", "second pass"):
        t0 = time.perf_counter()
        result = audit.verify()
        elapsed = time.perf_counter() - t0
        assert result.ok and result.length == entries, result
        rate = entries / elapsed
        print(
            f"  audit verify, {label}: {entries:,} entries in {elapsed:.2f} s = {rate:,.0f} "
            f"entries/s (1M at this rate: {1e6 / rate:.1f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    start_django(args.engine)
    print(f"== {args.engine}")
    bench_evaluation()
    bench_audit(args.entries)


if __name__ == "__main__":
    main()
