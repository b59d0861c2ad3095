"""The worker's throughput: the sunset sweep over many due waivers, and webhook delivery to a
local receiver (a separate process).

    python bench/worker.py --engine sqlite|postgresql [--waivers 100000] [--messages 2000]

The due waivers are written in bulk (they stand for requests approved long ago); the sweep
then expires each through the service (conditional update, audit entry, notifications).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import start_django  # noqa: E402

RECEIVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(float(sys.argv[1]))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def due_waivers(count: int) -> None:
    from django.conf import settings
    from django.contrib.auth.models import User

    from waiverdesk.directory import services as directory
    from waiverdesk.policies import services as policies
    from waiverdesk.waivers.models import Waiver

    version = policies.publish(settings.DEFAULT_POLICY_FILE.read_text())
    rita = directory.add_user("rita", ["requester"], "rita@example.com")
    olga = directory.add_user("olga", ["control_owner"], "olga@example.com")
    directory.add_customer("GLOBEX-002", "Globex", "AMER")
    customer = directory.Customer.objects.get()
    start, end = date(2026, 1, 1), date(2026, 3, 31)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, count, 5000):
        Waiver.objects.bulk_create(
            Waiver(
                reference=f"WVR-2026-{i:06d}", kind="new", type="temporary_access",
                status="active", policy_version=version, requester=rita, control_owner=olga,
                customer=customer, license_type="subscription", region="AMER",
                start=start, end=end, created_at=now, updated_at=now, submitted_at=now,
                decided_at=now, decision="approved",
            )
            for i in range(first, min(first + 5000, count))
        )  # fmt: skip
    assert User.objects.count() == 2


def bench_sweep(count: int) -> None:
    from waiverdesk.waivers import services

    due_waivers(count)
    t0 = time.perf_counter()
    done = services.sweep(datetime(2026, 4, 1, 2, 0, tzinfo=UTC))
    elapsed = time.perf_counter() - t0
    assert len(done) == count
    print(f"  sunset sweep: {count:,} waivers expired in {elapsed:.1f} s "
          f"({count / elapsed:,.0f}/s, with their audit entries and messages)")  # fmt: skip


def bench_delivery(count: int, endpoints: int = 1, latency: float = 0.0) -> None:
    from django.conf import settings

    from waiverdesk.notifications import services as notify
    from waiverdesk.notifications.models import Message
    from waiverdesk.webhooks.models import Webhook

    settings.ALLOW_PRIVATE_WEBHOOKS = True
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(latency)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(receiver.stdout.readline())
        Message.objects.all().delete()
        hooks = [
            Webhook.objects.create(
                url=f"http://127.0.0.1:{port}/hooks/{e}", events=[], secret="whsec_" + "A" * 32,
                created_by_id=1, created_at=datetime.now(UTC),
            )
            for e in range(endpoints)
        ]  # fmt: skip
        now = datetime.now(UTC)
        Message.objects.bulk_create(
            Message(
                channel="webhook", event="waiver.expired", message_id=f"msg_{uuid.uuid4().hex}",
                webhook=hooks[i % endpoints],
                body=json.dumps({"type": "waiver.expired", "data": {"n": i}}),
                next_attempt_at=now, created_at=now,
            )
            for i in range(count)
        )  # fmt: skip
        t0, cpu0 = time.perf_counter(), time.process_time()
        sent = 0
        while sent < count:
            sent += notify.deliver(now + timedelta(seconds=1))["sent"]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        print(f"  webhook delivery to {endpoints} endpoint(s) answering in {latency * 1e3:.0f} ms: "
              f"{count:,} messages in "
              f"{elapsed:.1f} s ({count / elapsed:,.0f}/s, one worker, signed; "
              f"{cpu / count * 1000:.2f} ms CPU each)")  # fmt: skip
    finally:
        receiver.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--waivers", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    start_django(args.engine)
    print(f"== worker on {args.engine}")
    bench_sweep(args.waivers)
    bench_delivery(args.messages)
    bench_delivery(args.messages, endpoints=8)
    bench_delivery(args.messages // 5, endpoints=8, latency=0.02)


if __name__ == "__main__":
    main()
