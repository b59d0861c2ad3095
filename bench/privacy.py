"""Privacy at scale: the worker's retention job when nothing is due and when much is, the
90-day report, and erasing one person, over many waivers.

    python bench/privacy.py --engine sqlite|postgresql [--waivers 100000]

The waivers are those of bench/governance.py (two years of requests by 50 requesters,
decided by 30 managers). Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from governance import NOW, seed_waivers  # noqa: E402
from run import start_django  # noqa: E402


def timed(name: str, fn, rounds: int = 3):
    times, result = [], None
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = sorted(times)[len(times) // 2]
    print(f"  {name:<52} {wall * 1000:9.1f} ms wall, {cpu * 1000:9.1f} ms CPU (median of {rounds})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--waivers", type=int, default=100_000)
    args = parser.parse_args()
    start_django(args.engine)
    from django.conf import settings
    from django.contrib.auth.models import User

    from waiverdesk.directory.services import add_user
    from waiverdesk.policies import services as policies
    from waiverdesk.privacy import services as privacy

    seed_waivers(args.waivers)
    print(f"== privacy on {args.engine}, {args.waivers:,} waivers")
    timed("retention tick, no retention section", lambda: privacy.apply_retention(NOW))
    text = settings.DEFAULT_POLICY_FILE.read_text()
    version = policies.publish(
        text + "\nretention:\n  personal_data_days: 730\n  records_days: 3650\n"
    )
    policies.approve(version.number, add_user("adam", ["admin"]))  # a second policy owner
    timed("retention tick, nothing due", lambda: privacy.apply_retention(NOW))
    User.objects.filter(username__in=[f"mgr{i}" for i in range(5)]).update(is_active=False)
    later = NOW + timedelta(days=3650 + 400)
    found = timed("the 90-day report, much due (10 years on)", lambda: privacy.due(later.date()))
    print(f"    {len(found):,} due")
    timed("retention tick, one batch of what is due", lambda: privacy.apply_retention(later))
    managers = iter(f"mgr{i}" for i in range(10, 20))  # they decided, and own nothing
    timed("erase one person (every text column searched)",
          lambda: privacy.erase(next(managers), "system", "bench"))  # fmt: skip


if __name__ == "__main__":
    main()
