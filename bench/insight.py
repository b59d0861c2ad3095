"""Metrics at scale: each dashboard query over many waivers, and a policy replay over many
past requests.

    python bench/insight.py --engine sqlite|postgresql [--waivers 1000000] [--replay 100000]

The waivers are those of bench/governance.py (two years of requests, decided after a route
step, some in force, renewed, rejected). Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from governance import NOW, seed_waivers  # noqa: E402
from run import start_django  # noqa: E402


def timed(name: str, fn, rounds: int = 3) -> None:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print(f"  {name}: median {statistics.median(times) * 1000:,.0f} ms "
          f"(min {min(times) * 1000:,.0f})")  # fmt: skip


def bench_dashboard(count: int) -> None:
    from waiverdesk.insight import metrics
    from waiverdesk.insight.metrics import Period

    t0 = time.perf_counter()
    seed_waivers(count)
    print(f"  {count:,} waivers written in {time.perf_counter() - t0:.0f} s")
    for label in ("2026", "2026-Q3"):
        period = Period.parse(label)
        print(f"  period {label}: {metrics.cohort(period).count():,} requests submitted in it")
        for name, query in queries(period).items():
            timed(name, query)


def queries(period):
    """Each query of the dashboard over the requests of `period`."""
    from waiverdesk.insight import metrics
    from waiverdesk.insight.metrics import Filters
    from waiverdesk.waivers.models import RouteStep

    rows = metrics.cohort(period)
    approved = rows.filter(decision="approved")
    steps = RouteStep.objects.filter(metrics.in_cohort(period, via="waiver__"),
                                     status__in=["approved", "rejected"])  # fmt: skip
    return {
        "counts, rates and adherence (one pass)": lambda: rows.aggregate(**metrics._tallies()),
        "cycle time p50/p90": lambda: metrics.quantiles(rows, "submitted_at", "decided_at"),
        "cycle time by tier": lambda: metrics.quantiles(steps, "opened_at", "closed_at", by="tier"),
        "decision to activation": lambda: metrics.quantiles(approved, "decided_at",
                                                            "activated_at"),
        "concessions by month, product, region, type": lambda: metrics.concessions(approved),
        "leakage": lambda: metrics.leakage(rows, period),
        "where requests wait": lambda: metrics.bottlenecks(period, now=NOW),
        "the figures (compute)": lambda: metrics.compute(period, now=NOW),
        "the dashboard page (figures and waits)": lambda: page(period, Filters()),
        "the dashboard page, one family and region": lambda: page(
            period, Filters(family="Security", region="AMER")),
    }  # fmt: skip


def page(period, filters):
    """What the metrics page, its CSV and the API read: the figures and the waits."""
    from waiverdesk.insight import metrics

    return metrics.compute(period, filters, NOW), metrics.bottlenecks(period, filters, NOW)


def bench_replay(count: int) -> None:
    from django.conf import settings

    from waiverdesk.core.policy import load_policy
    from waiverdesk.insight.replay import replay
    from waiverdesk.waivers.models import Waiver

    text = settings.DEFAULT_POLICY_FILE.read_text()
    draft = load_policy(text.replace("concession >= 25000.0 ||", "concession >= 20000.0 ||", 1))
    newest = Waiver.objects.exclude(submitted_at=None).order_by("-submitted_at")
    since = newest.values_list("submitted_at", flat=True)[count - 1]
    t0 = time.perf_counter()
    result = replay(draft, since)
    elapsed = time.perf_counter() - t0
    rate = result.requests / elapsed
    print(f"  policy replay over {result.requests:,} past requests: {elapsed:.1f} s "
          f"({rate:,.0f} a second; {len(result.changes):,} would change)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--waivers", type=int, default=1_000_000)
    parser.add_argument("--replay", type=int, default=100_000)
    args = parser.parse_args()
    start_django(args.engine)
    print(f"== metrics on {args.engine}")
    bench_dashboard(args.waivers)
    bench_replay(min(args.replay, args.waivers))


if __name__ == "__main__":
    main()
