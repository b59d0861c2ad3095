"""Taking in usage records: each row checked, good rows kept, bad rows reported by their
position, and a record already received (same `record_id`) never counted twice.

A record: `record_id`, `customer` (external id), `product` (code), `metric`, `quantity`,
and either `period_start` and `period_end` (dates) or `timestamp` (ISO 8601).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db import connection, transaction

from waiverdesk.directory.models import Customer, Product

CHUNK = 50_000
_COLUMNS = ("record_id", "customer_id", "product_id", "metric", "quantity", "period_start",
            "period_end", "received_at")  # fmt: skip


@dataclass
class Report:
    """What an ingestion did: rows kept, rows already received, and each bad row's problems."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: Report) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected


class Reader:
    """Checks records against the customers and products it knows (loaded once)."""

    def __init__(self):
        self.customers = dict(Customer.objects.values_list("external_id", "pk"))
        self.products = dict(Product.objects.values_list("code", "pk"))

    def check(self, record: Any, now: Any) -> tuple[tuple | None, list[dict[str, str]]]:
        """(row to store, []) or (None, problems) for one record."""
        if not isinstance(record, dict):
            return None, [_problem("record", "invalid", "a record is an object of fields")]
        problems = []
        record_id = str(record.get("record_id") or "").strip()
        if not record_id or len(record_id) > 100:
            problems.append(_problem("record_id", "required", "give each record its own id"))
        customer = self.customers.get(record.get("customer"))
        if customer is None:
            problems.append(_problem("customer", "unknown_customer", "no such customer"))
        product = self.products.get(record.get("product"))
        if product is None:
            problems.append(_problem("product", "unknown_product", "no such product"))
        metric = str(record.get("metric") or "").strip()
        if not metric or len(metric) > 60:
            problems.append(_problem("metric", "required", "name the metric, e.g. seats"))
        try:
            quantity = float(record.get("quantity"))
            if quantity < 0 or quantity != quantity:
                raise ValueError
        except (TypeError, ValueError):
            quantity = None
            problems.append(_problem("quantity", "invalid", "a number, zero or more"))
        start, end, period_problems = _period(record)
        problems += period_problems
        if problems:
            return None, problems
        return (record_id, customer, product, metric, quantity, start, end, now), []


def ingest(records: Iterable[tuple[int, Any]], now: datetime) -> Report:
    """Check and store records given with their position (index or line); one transaction
    per chunk, so what a report acknowledges is committed."""
    reader, report, rows = Reader(), Report(), []
    stamp = connection.ops.adapt_datetimefield_value(now)
    for position, record in records:
        row, problems = reader.check(record, stamp)
        if problems:
            report.rejected.append({"position": position, "errors": problems})
        else:
            rows.append(row)
        if len(rows) >= CHUNK:
            report.add(_store(rows))
            rows = []
    report.add(_store(rows))
    return report


def read_file(text: Iterable[str], kind: str) -> Iterator[tuple[int, Any]]:
    """(line number, record) for each line of a CSV (with a header) or NDJSON file."""
    if kind == "csv":
        rows = csv.DictReader(text)
        for row in rows:
            yield rows.line_num, row
        return
    for number, line in enumerate(text, 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError:
                yield number, None


def _store(rows: list[tuple]) -> Report:
    """Insert the rows not yet received; count them and the duplicates."""
    if not rows:
        return Report()
    columns = ", ".join(_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY into a scratch table, then keep what is new: COPY itself cannot skip
            # records already received.
            cursor.execute(
                "CREATE TEMP TABLE usage_incoming (record_id text, customer_id bigint, "
                "product_id bigint, metric text, quantity double precision, period_start date, "
                "period_end date, received_at timestamptz)"
            )
            with cursor.cursor.copy(f"COPY usage_incoming ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO usage_usagerecord ({columns}) SELECT DISTINCT ON (record_id) "
                f"{columns} FROM usage_incoming ON CONFLICT (record_id) DO NOTHING"
            )
            inserted = cursor.rowcount
            cursor.execute("DROP TABLE usage_incoming")  # also when this is a savepoint
        else:
            before = connection.connection.total_changes
            cursor.executemany(
                f"INSERT OR IGNORE INTO usage_usagerecord ({columns}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
            inserted = connection.connection.total_changes - before
    return Report(accepted=inserted, duplicates=len(rows) - inserted)


def _period(record: dict) -> tuple[date | None, date | None, list[dict[str, str]]]:
    try:
        if record.get("timestamp"):
            day = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00")).date()
            return day, day, []
        start = date.fromisoformat(str(record.get("period_start")))
        end = date.fromisoformat(str(record.get("period_end")))
    except ValueError:
        return None, None, [_problem("period", "invalid", _PERIOD)]
    if end < start:
        return (
            None,
            None,
            [_problem("period_end", "before_start", "the period ends before it starts")],
        )
    return start, end, []


_PERIOD = "give period_start and period_end (YYYY-MM-DD), or an ISO 8601 timestamp"


def _problem(name: str, code: str, message: str) -> dict[str, str]:
    return {"field": name, "code": code, "message": message}


def kind_of(path: str) -> str:
    """csv or ndjson, by the file's name."""
    return "csv" if path.lower().endswith(".csv") else "ndjson"
