"""The daily pages at scale: an approver's inbox of 10,000 waiting steps, list pages with a
search and two filters, the audit-trail page, and the Excel export of about 10,000 rows.

    python bench/lists.py --engine sqlite|postgresql [--waivers 1000000] [--keep]

With --keep on PostgreSQL the seeded database `waiverdesk_lists` is kept and used again by
the next run with --keep (seeding a million waivers takes about a quarter of an hour).

Each page is loaded 20 times through the whole Django stack (middleware, views, templates)
in this process; the figures are the server's wall time (median and p95) and the CPU time of
this process per load (the database's own CPU is not in it). Printed, not asserted.
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

WAITING = 10_000
AUDIT_ENTRIES = 200_000


def seed(count: int) -> None:
    """bench/governance.py's waivers, with what the lists read: search text, money in the
    base currency, 10,000 steps waiting for the sales managers, and audit entries."""
    from django.db import connection

    from waiverdesk.waivers import search

    t0 = time.perf_counter()
    seed_waivers(count)
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        search.uninstall(connection, cursor.execute)  # indexed once, after the writes
        text = ("lower(w.reference || ' ' || w.type || ' ' || c.external_id || ' ' || c.name "
                "|| ' req' || (w.requester_id % 50))")  # fmt: skip
        money = ("jsonb_build_object('base', 'EUR', 'currency', 'EUR', 'concession_base', "
                 "w.financials->'concession')" if postgres else
                 "json_object('base', 'EUR', 'currency', 'EUR', 'concession_base', "
                 "json_extract(w.financials, '$.concession'))")  # fmt: skip
        cursor.execute(f"UPDATE waivers_waiver AS w SET search_text = {text}, money = {money} "
                       "FROM directory_customer AS c WHERE c.id = w.customer_id")  # fmt: skip
        cursor.execute(
            "UPDATE waivers_waiver SET status = 'submitted', round = 1, decided_at = NULL "
            "WHERE id IN (SELECT id FROM waivers_waiver WHERE status = 'in_review' "
            f"ORDER BY id DESC LIMIT {WAITING})"
        )
        jsonb = "'[]'::jsonb" if postgres else "'[]'"
        cursor.execute(
            "INSERT INTO waivers_routestep (waiver_id, round, position, tier, role, required, "
            f"status, reasons, sla_hours, opened_at) SELECT id, 1, 0, 'manager', "
            f"'sales_manager', 1, 'pending', {jsonb}, 24, submitted_at "
            "FROM waivers_waiver WHERE status = 'submitted'"
        )
        series = (f"generate_series(1, {AUDIT_ENTRIES}) AS s(n)" if postgres else
                  f"(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
                  f"WHERE n < {AUDIT_ENTRIES}) SELECT n FROM r)")  # fmt: skip
        cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_entry")
        last = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO audit_entry (seq, at, actor, action, object_type, object_ref, payload, "
            f"prev_hash, hash, canonical) SELECT {last} + n, %s, 'req' || (n %% 50), "
            "CASE WHEN n %% 3 = 0 THEN 'waiver.decided' ELSE 'waiver.created' END, 'waiver', "
            "'WVR-B-' || lpad(CAST(n AS text), 7, '0'), '{}', '', '', '' FROM " + series,
            [NOW],
        )
        search.install(connection, cursor.execute)
        cursor.execute("SELECT COUNT(*) FROM waivers_routestep WHERE status = 'pending'")
        waiting = cursor.fetchone()[0]
        if postgres:
            cursor.execute("VACUUM ANALYZE")
    print(f"  seeded {count:,} waivers, {waiting:,} waiting, {AUDIT_ENTRIES:,} audit entries "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip


def load(client, url: str, rounds: int = 20) -> tuple[float, float, float, int]:
    """Median and p95 wall ms, median CPU ms, and the last status, of `rounds` loads."""
    walls, cpus, status = [], [], 0
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        walls.append((time.perf_counter() - w0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
        status = response.status_code
        assert body
    walls.sort()
    p95 = walls[min(len(walls) - 1, round(0.95 * len(walls)) - 1)]
    return statistics.median(walls), p95, statistics.median(cpus), status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--waivers", type=int)
    parser.add_argument("--keep", action="store_true", help="keep and reuse the seeded database")
    args = parser.parse_args()
    count = args.waivers or (1_000_000 if args.engine == "postgresql" else 100_000)
    start_django(args.engine, keep="waiverdesk_lists" if args.keep else "")
    from django.conf import settings
    from django.contrib.auth.models import User

    seeded = User.objects.filter(username="audrey").exists()
    from django.http import QueryDict
    from django.test import Client

    from waiverdesk.directory.services import add_user

    settings.ALLOWED_HOSTS = ["testserver"]
    print(f"lists on {args.engine}, {count:,} waivers")
    if not seeded:
        seed(count)
        add_user("audrey", ["auditor"])
    approver, auditor = Client(), Client()
    approver.force_login(User.objects.get(username="mgr0"))
    auditor.force_login(User.objects.get(username="audrey"))
    # About 10,000 rows: half the amounts are spread evenly below 300,000 (the other half
    # lie between 22,500 and 25,000, below this range).
    few = f"amount_min=25000&amount_max={25_000 + 6_000_000_000 // count}"
    pages = [
        ("the inbox of a sales manager", approver, "/inbox/"),
        ("inbox, searched and filtered", approver, "/inbox/?q=c-04217&risk=low&region=AMER"),
        ("all requests, a customer's id + 2 filters", auditor,
         "/requests/all/?q=c-04217&status=approved&region=AMER"),
        ("all requests, a customer's name + 2 filters, by amount", auditor,
         "/requests/all/?q=customer 4217&status=active&type=temporary_access&sort=-amount"),
        ("all requests, a word in every request + 2 filters", auditor,
         "/requests/all/?q=customer&status=approved&region=AMER"),
        ("all requests, a word in every request + 2 filters, by amount", auditor,
         "/requests/all/?q=customer&status=approved&region=AMER&sort=-amount"),
        ("all requests, 2 filters, page 2", auditor, None),
        ("a customer's page", auditor, "/customers/C-00042/"),
        ("the audit trail", auditor, "/audit/"),
        ("the audit trail of one actor", auditor, "/audit/?actor=req7&action=waiver.decided"),
    ]  # fmt: skip
    for name, client, url in pages:
        if url is None:  # the second page of a list, through its own link
            first = client.get("/requests/all/?status=approved&region=AMER").content.decode()
            url = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
            url = "/requests/all/" + url
        median, p95, cpu, status = load(client, url)
        print(f"  {name}: median {median:,.0f} ms, p95 {p95:,.0f} ms, CPU {cpu:,.0f} ms "
              f"[{status}]")  # fmt: skip
    export = f"/requests/all/?{few}&export=xlsx"
    from waiverdesk.waivers import listing
    from waiverdesk.waivers.models import Waiver

    query = listing.read(QueryDict(few))
    rows = listing.filtered(Waiver.objects.all(), query).count()
    median, p95, cpu, status = load(auditor, export, rounds=3)
    print(f"  Excel export of {rows:,} rows: median {median / 1000:.1f} s, CPU {cpu / 1000:.1f} s "
          f"[{status}]")  # fmt: skip


if __name__ == "__main__":
    main()
