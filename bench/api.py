"""The API's cost and throughput: create-and-submit, approve, read one, list 50, against
`waiverdesk serve` (gunicorn), on SQLite or PostgreSQL.

    python bench/api.py --engine sqlite|postgresql [--runs 3] [--clients 8] [--workers 2]
                        [--baseline DIR] [--scaling]

For each operation it prints the CPU per request (the server's processes and, on
PostgreSQL, the database backends serving it, read from the kernel's accounting of those
processes: steadier than wall time on a shared machine), latency p50/p95/p99 with one
client and with `--clients`, throughput against what the CPU per request allows on this
machine's cores, the statements each request runs, and, on PostgreSQL, the share of
sampled backend time spent waiting on a lock. `/healthz` is the machine's ceiling.

`--baseline DIR` runs the same measurements, in the same run, on the code checked out in
DIR (a `git worktree` of an earlier commit), and prints the ratios. `--scaling` compares one
server pinned to one core with two servers, one per core, on one database.
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
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRATCH_DB = "waiverdesk_bench_api"
TICK = os.sysconf("SC_CLK_TCK")
OPERATIONS = ["healthz", "create and submit", "approve", "read one", "list 50"]


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


def call(url: str, token: str = "", payload: dict | None = None) -> tuple[int, dict, float]:
    """One request: (status, answer, seconds)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if payload is not None:
        data, headers["Content-Type"] = json.dumps(payload).encode(), "application/json"
    request = urllib.request.Request(url, data, headers=headers)
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - t0
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), time.perf_counter() - t0


# -- what the processes spent ------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu(pid: int, reaped: bool = False) -> float:
    """Seconds of CPU `pid` has used (with `reaped`, also its children that have ended)."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


class Accounting:
    """The CPU of the servers (gunicorn arbiters, their workers and those that ended) and of
    the PostgreSQL backends connected to the scratch database."""

    def __init__(self, servers: list[int], dsn: str | None):
        self.servers, self.dsn = servers, dsn
        self.conn = None
        if dsn:
            import psycopg

            self.conn = psycopg.connect(dsn, autocommit=True)

    def backends(self) -> list[int]:
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
        return [pid for (pid,) in rows]

    def snapshot(self) -> dict[int, float]:
        taken = {}
        for arbiter in self.servers:
            taken[arbiter] = _cpu(arbiter, reaped=True)
            for worker in _children(arbiter):
                taken[worker] = _cpu(worker)
        for backend in self.backends():
            taken[-backend] = _cpu(backend)
        return taken

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> tuple[float, float]:
        """(server seconds, database seconds) between two snapshots; a process that began
        in between counts whole."""
        server = sum(v - before.get(k, 0.0) for k, v in after.items() if k > 0)
        database = sum(v - before.get(k, 0.0) for k, v in after.items() if k < 0)
        return server, database


class LockSampler:
    """Samples pg_stat_activity while a phase runs: the share of active backends of the
    scratch database that wait on a lock (heavyweight locks, advisory locks included)."""

    def __init__(self, dsn: str | None):
        self.dsn, self.active, self.waiting = dsn, 0, 0
        self._stop = threading.Event()

    def __enter__(self):
        if self.dsn:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.wait(0.005):
                active, waiting = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND pid <> pg_backend_pid()"
                ).fetchone()
                self.active += active
                self.waiting += waiting

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.dsn:
            self._thread.join()

    def share(self) -> float | None:
        return self.waiting / self.active if self.active else None


# -- running a phase ---------------------------------------------------------------------


def phase(clients: int, jobs: list, work, accounting: Accounting, dsn: str | None) -> dict:
    """Spread `jobs` over `clients` threads; what it cost and how long each took."""
    results, lock, queue = [], threading.Lock(), list(jobs)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop(0)
            outcome = work(job)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    before, mine = accounting.snapshot(), time.process_time()
    t0 = time.perf_counter()
    with LockSampler(dsn if clients > 1 else None) as sampler:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - t0
    mine = time.process_time() - mine
    server, database = Accounting.spent(before, accounting.snapshot())
    latencies = sorted(r[2] * 1000 for r in results)
    n = len(results)
    cpu = (server + database) / n * 1000
    # What the CPU per request allows on the cores left once this process's clients ran.
    cores = max(0.1, (os.cpu_count() or 1) - mine / elapsed)
    return {
        "n": n,
        "refused": sum(1 for r in results if r[0] >= 300),
        "answers": [r[1] for r in results],
        "cpu_ms": cpu,
        "server_ms": server / n * 1000,
        "database_ms": database / n * 1000,
        "rate": n / elapsed,
        "allowed": cores / (cpu / 1000) if cpu else None,
        "p50": latencies[n // 2],
        "p95": latencies[min(n - 1, int(n * 0.95))],
        "p99": latencies[min(n - 1, int(n * 0.99))],
        "locks": sampler.share(),
    }


@contextmanager
def serve(env: dict, port: int, workers: int, cpus: str = ""):
    """`waiverdesk serve` in a subprocess (pinned to `cpus` when given): (url, pid)."""
    command = [str(BIN / "waiverdesk"), "serve", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers)]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen(command, env=env, **quiet)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def workspace(engine: str, code: Path) -> tuple[dict, str | None, str, str, str]:
    """A migrated demo workspace running `code`: (env, dsn, requester, approver, reader)."""
    data_dir = tempfile.mkdtemp()
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "WAIVERDESK_DATA_DIR": data_dir,
        "DATABASE_URL": database_url(engine, data_dir),
        "WAIVERDESK_SECRET_KEY": "bench-" + "x" * 50,
        "WAIVERDESK_LOG_LEVEL": "WARNING",
    }

    def waiverdesk(*words: str) -> str:
        return subprocess.run(
            [BIN / "waiverdesk", *words], env=env, check=True, text=True, capture_output=True
        ).stdout.strip()

    waiverdesk("migrate", "-v0")
    waiverdesk("demo")
    tokens = [waiverdesk("token", "create", name) for name in ("rita", "mona", "rita")]
    dsn = env["DATABASE_URL"] if engine == "postgresql" else None
    return env, dsn, *tokens


def statements(env: dict) -> dict[str, int]:
    """The statements each operation runs, counted in-process by Django on the workspace."""
    found = subprocess.run(
        [sys.executable, __file__, "--count-statements"],
        env={**env, "DJANGO_SETTINGS_MODULE": "waiverdesk.settings"},
        check=True,
        text=True,
        capture_output=True,
    )
    return json.loads(found.stdout.strip().splitlines()[-1])


def count_statements() -> None:
    """(In a subprocess, on a workspace.) Print each operation's statement count as JSON."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from waiverdesk.api.services import create_token

    rita, mona = (create_token(User.objects.get(username=n), "count")[1] for n in ("rita", "mona"))
    client = Client(HTTP_HOST="127.0.0.1")

    def post(path: str, token: str, payload: dict):
        return client.post(path, json.dumps(payload), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip

    refs = [post("/api/v1/waivers", rita, body(i)).json()["reference"] for i in range(3)]
    counts = {}
    for name, act in [
        ("create and submit", lambda: post("/api/v1/waivers", rita, body(9))),
        (
            "approve",
            lambda: post(f"/api/v1/waivers/{refs[0]}/decisions", mona, {"decision": "approve"}),
        ),  # fmt: skip
        (
            "read one",
            lambda: client.get(f"/api/v1/waivers/{refs[1]}", HTTP_AUTHORIZATION=f"Bearer {rita}"),
        ),  # fmt: skip
        (
            "list 50",
            lambda: client.get("/api/v1/waivers?limit=50", HTTP_AUTHORIZATION=f"Bearer {rita}"),
        ),  # fmt: skip
    ]:
        with CaptureQueriesContext(connection) as queries:
            answer = act()
        assert answer.status_code < 300, answer.content
        counts[name] = len(queries.captured_queries)
    print(json.dumps(counts))


def measure(engine: str, code: Path, args) -> dict:
    """Every operation, sequentially and with `args.clients`, on a fresh workspace."""
    env, dsn, rita, mona, reader = workspace(engine, code)
    counts = statements(env)
    found: dict[str, dict] = {}
    with serve(env, args.port, args.workers) as (url, pid):
        accounting = Accounting([pid], dsn)
        base = f"{url}/api/v1"
        # Warm every worker up (imports, connections, the policy compiled) before measuring.
        for i in range(4 * args.workers):
            call(f"{base}/waivers", rita, body(i))
            call(f"{base}/waivers?limit=50", reader)
        for clients, n in ((1, args.sequential), (args.clients, args.requests)):
            made = phase(clients, list(range(n)), lambda i: call(f"{base}/waivers", rita, body(i)),
                         accounting, dsn)  # fmt: skip
            refs = [a["reference"] for a in made["answers"] if "reference" in a]
            work = {
                "healthz": (range(n), lambda i: call(f"{url}/healthz")),
                "approve": (
                    refs,
                    lambda ref: call(
                        f"{base}/waivers/{ref}/decisions", mona, {"decision": "approve"}
                    ),
                ),  # fmt: skip
                "read one": (refs, lambda ref: call(f"{base}/waivers/{ref}", reader)),
                "list 50": (range(n), lambda i: call(f"{base}/waivers?limit=50", reader)),
            }
            results = {"create and submit": made}
            for name, (jobs, act) in work.items():
                results[name] = phase(clients, list(jobs), act, accounting, dsn)
            for name, result in results.items():
                found.setdefault(name, {})[clients] = result
    for name in OPERATIONS:
        found[name]["statements"] = counts.get(name)
    return found


def report(label: str, runs: list[dict], clients: int) -> dict[str, float]:
    """Print the medians of `runs`; return each operation's median CPU ms per request."""

    def median(name: str, n: int, key: str) -> float | None:
        values = [r[name][n][key] for r in runs if r[name][n][key] is not None]
        return statistics.median(values) if values else None

    print(f"  {label} (medians of {len(runs)} runs)")
    cpus = {}
    for name in OPERATIONS:
        cpu = median(name, 1, "cpu_ms")
        cpus[name] = cpu
        server, database = median(name, 1, "server_ms"), median(name, 1, "database_ms")
        p = [median(name, n, k) for n in (1, clients) for k in ("p50", "p95", "p99")]
        rate, allowed = median(name, clients, "rate"), median(name, clients, "allowed")
        locks = median(name, clients, "locks")
        refused = sum(r[name][n]["refused"] for r in runs for n in (1, clients))
        statements = runs[0][name]["statements"]
        print(
            f"    {name:18} CPU {cpu:5.1f} ms/request (server {server:.1f}, database "
            f"{database:.1f}); {statements if statements is not None else '-'} statements; "
            f"1 client p50/p95/p99 {p[0]:.0f}/{p[1]:.0f}/{p[2]:.0f} ms; {clients} clients "
            f"{p[3]:.0f}/{p[4]:.0f}/{p[5]:.0f} ms, {rate:,.0f}/s"
            + (f" = {rate / allowed:.0%} of what the CPU allows" if allowed else "")
            + (f"; waiting on locks {locks:.1%}" if locks is not None else "")
            + (f"; {refused} refused" if refused else "")
        )
    return cpus


def scaling(engine: str, args) -> None:
    """One server on one core against two servers, one core each, on one database."""
    env, _dsn, rita, _mona, _reader = workspace(engine, ROOT)
    rates = []
    for cores in (["0"], ["0", "1"]):
        with ExitStack() as servers:
            urls = [servers.enter_context(serve(env, args.port + i, 2, core))[0]
                    for i, core in enumerate(cores)]  # fmt: skip
            for url in urls:
                for i in range(8):
                    call(f"{url}/api/v1/waivers", rita, body(i))

            def create(i: int, urls=urls) -> tuple:
                return call(f"{urls[i % len(urls)]}/api/v1/waivers", rita, body(i))

            jobs = list(range(args.requests))
            rates.append(phase(args.clients, jobs, create, Accounting([], None), None)["rate"])
    print(
        f"  create and submit, {args.clients} clients: one server on core 0 {rates[0]:,.0f}/s; "
        f"two servers on cores 0 and 1 {rates[1]:,.0f}/s = {rates[1] / rates[0]:.2f}x "
        f"(the database, the clients and the servers share this machine's "
        f"{os.cpu_count()} cores)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--baseline", type=Path, help="a checkout of earlier code to compare")
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--count-statements", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_statements:
        count_statements()
        return
    print(f"== API on {args.engine}, gunicorn with {args.workers} workers")
    codes = [("this code", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    runs: dict[str, list] = {label: [] for label, _ in codes}
    for _ in range(args.runs):  # interleaved, so both see the same machine
        for label, code in codes:
            runs[label].append(measure(args.engine, code, args))
    medians = {label: report(label, found, args.clients) for label, found in runs.items()}
    if args.baseline:
        ratios = ", ".join(
            f"{name} {medians['this code'][name] / medians['baseline'][name]:.2f}"
            for name in OPERATIONS
        )
        print(f"  CPU per request, this code / baseline: {ratios}")
    if args.scaling:
        scaling(args.engine, args)


if __name__ == "__main__":
    main()
