"""API throughput: create-and-submit, then approve, with concurrent clients against
`waiverdesk serve` (gunicorn), on SQLite or PostgreSQL.

    python bench/api.py --engine sqlite|postgresql [--clients 8] [--requests 400] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from waiverdesk.testing import serving  # noqa: E402

BIN = Path(sys.executable).parent
SCRATCH_DB = "waiverdesk_bench_api"


def database_url(engine: str, data_dir: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{data_dir}/bench.sqlite3"
    import psycopg

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
    return server.rsplit("/", 1)[0] + f"/{SCRATCH_DB}"


def body(i: int) -> dict:
    start = date.today() + timedelta(days=7)
    return {
        "type": "temporary_access",
        "customer": "INITECH-003",
        "products": ["AN-EDGE"],
        "license_type": "subscription",
        "region": "AMER",
        "start": start.isoformat(),
        "end": (start + timedelta(days=44)).isoformat(),
        "scope": {"seats": 10 + i % 50},
        "financials": {"currency": "EUR", "list_value": 10000, "concession": 1000},
        "justification": {
            "benefit": "b",
            "alternatives": "a",
            "customer_impact": "c",
            "why_not_standard": "w",
        },
        "outcomes": [{"metric": "seats in use", "target": 10}],
        "control_owner": "olga",
        "submit": True,
    }


def post(url: str, token: str, payload: dict) -> tuple[int, dict, float]:
    request = urllib.request.Request(
        url,
        json.dumps(payload).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - t0
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), time.perf_counter() - t0


def get(url: str) -> tuple[int, dict, float]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, json.loads(response.read()), time.perf_counter() - t0


def run(label: str, clients: int, jobs: list, work) -> list:
    """Spread `jobs` over `clients` threads; print throughput and latency."""
    results, lock, queue = [], threading.Lock(), list(jobs)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop()
            outcome = work(job)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies = sorted(r[2] * 1000 for r in results)
    failed = sum(1 for r in results if r[0] >= 300)
    p50, p95 = statistics.median(latencies), latencies[int(len(latencies) * 0.95)]
    print(
        f"  {label}: {len(results) / elapsed:,.0f} requests/s, p50 {p50:.0f} ms, "
        f"p95 {p95:.0f} ms ({len(results)} requests, {clients} clients, {failed} refused)"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp()
    env = {
        **os.environ,
        "WAIVERDESK_DATA_DIR": data_dir,
        "DATABASE_URL": database_url(args.engine, data_dir),
    }

    def waiverdesk(*words: str) -> str:
        return subprocess.run(
            [BIN / "waiverdesk", *words], env=env, check=True, text=True, capture_output=True
        ).stdout.strip()

    waiverdesk("migrate", "-v0")
    waiverdesk("demo")
    rita, mona = waiverdesk("token", "create", "rita"), waiverdesk("token", "create", "mona")
    with serving({**env, "WAIVERDESK_LOG_LEVEL": "WARNING"}, args.port, args.workers) as url:
        base = f"{url}/api/v1"
        print(f"== API on {args.engine}, gunicorn with {args.workers} workers")
        # The ceiling of this machine: the cheapest request the server answers.
        run(
            "GET /healthz (ceiling)",
            args.clients,
            list(range(args.requests)),
            lambda i: get(f"{url}/healthz"),
        )
        created = run(
            "create and submit",
            args.clients,
            list(range(args.requests)),
            lambda i: post(f"{base}/waivers", rita, body(i)),
        )
        refs = [r[1]["reference"] for r in created if r[0] == 201]
        run(
            "approve",
            args.clients,
            refs,
            lambda ref: post(f"{base}/waivers/{ref}/decisions", mona, {"decision": "approve"}),
        )


if __name__ == "__main__":
    main()
