"""Taking in usage records: each row checked, good rows kept, bad rows reported by their
position, and a record already received (same `record_id`) never counted twice.

A record: `record_id`, `customer` (external id), `product` (code), `metric`, `quantity`,
and either `period_start` and `period_end` (dates) or `timestamp` (ISO 8601).

Records are checked by the database (waiverdesk.staging), whichever way they arrive: an
API batch, an NDJSON file, or a CSV file as a spreadsheet exports it (waiverdesk.sheets).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from django.db import connection

from waiverdesk import staging
from waiverdesk.staging import Report, number, problem

FIELDS = ("record_id", "customer", "product", "metric", "quantity", "period_start",
          "period_end", "timestamp")  # fmt: skip
# Each of these must be a column of a CSV file (the period, or a timestamp).
REQUIRED = (("record_id",), ("customer",), ("product",), ("metric",), ("quantity",),
            ("period_start", "timestamp"))  # fmt: skip
DATES = ("period_start", "period_end")

_NOT_A_RECORD = problem("record", "invalid", "a record is an object of fields")
_PERIOD = "give period_start and period_end (YYYY-MM-DD), or an ISO 8601 timestamp"

# (a condition on a checked row that is true when the row is bad, the problem reported)
_CHECKS = [
    ("coalesce(length(record_id), 0) NOT BETWEEN 1 AND 100",
     problem("record_id", "required", "give each record its own id")),
    *staging.ACCOUNT_CHECKS,
    ("coalesce(length(metric), 0) NOT BETWEEN 1 AND 60",
     problem("metric", "required", "name the metric, e.g. seats")),
    ("quantity IS NULL", problem("quantity", "invalid", "a number, zero or more")),
    ("period_start IS NULL OR period_end IS NULL", problem("period", "invalid", _PERIOD)),
    staging.PERIOD_ORDER,
]  # fmt: skip

# Whether a timestamp is valid ISO 8601, on each engine.
_MOMENT = {
    "postgresql": r"trim(i.timestamp) ~ '^\d{4}-\d\d-\d\d"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$'",
    "sqlite": "datetime(trim(i.timestamp)) IS NOT NULL",
}


def _checked(trusting: bool = False) -> str:
    """The staged rows as they would be stored, NULL where a value is not valid."""
    vendor = connection.vendor
    day = f"WHEN {_MOMENT[vendor]} THEN substr(trim(i.timestamp), 1, 10) END"
    start = f"CASE WHEN coalesce(trim(i.timestamp), '') = '' THEN i.period_start {day}"
    end = f"CASE WHEN coalesce(trim(i.timestamp), '') = '' THEN i.period_end {day}"
    return f"""
        SELECT i.n, trim(i.record_id) AS record_id, c.id AS customer_id,
            p.id AS product_id, trim(i.metric) AS metric, {number("i.quantity")} AS quantity,
            {staging.day(start, trusting)} AS period_start,
            {staging.day(end, trusting)} AS period_end
        {staging.with_accounts("usage_incoming")}"""


USAGE = staging.Import(
    name="usage",
    fields=FIELDS,
    numeric=("quantity",),
    checked=_checked,
    checks=_CHECKS,
    table="usage_usagerecord",
    columns=(
        "record_id",
        "customer_id",
        "product_id",
        "metric",
        "quantity",
        "period_start",
        "period_end",
        "received_at",
    ),  # fmt: skip
    key=("record_id",),
)


def ingest(records: Iterable[tuple[int, Any]], now: datetime) -> Report:
    """Check and store records given with their position (index or line)."""
    report, rows = Report(), []
    for position, record in records:
        if isinstance(record, dict):
            rows.append((position, *(_text(record.get(name)) for name in FIELDS)))
        else:
            report.rejected.append({"position": position, "errors": [_NOT_A_RECORD]})
        if len(rows) >= staging.CHUNK:
            report.add(staging.keep(USAGE, rows, FIELDS, now))
            rows = []
    report.add(staging.keep(USAGE, rows, FIELDS, now))
    report.rejected.sort(key=lambda bad: bad["position"])
    return report


def import_file(
    handle: IO[bytes],
    kind: str,
    now: datetime,
    progress: Callable[[int], Any] | None = None,
    encoding: str | None = None,
    date_format: str | None = None,
) -> Report:
    """Import a CSV export (with a header; see waiverdesk.sheets) or an NDJSON file, a chunk
    of lines at a time; `progress` is told the number of lines read after each chunk. Raises
    Invalid when a CSV file's header is not one of usage records."""
    if kind == "csv":
        file = staging.CsvFile.open(USAGE, handle, REQUIRED, encoding, date_format, DATES)
        return staging.import_csv(USAGE, file, now, progress)

    def keep(first: int, lines: list[bytes]) -> Report:
        return ingest(_json_lines(lines, first), now)

    return staging.in_chunks(iter(handle), 1, keep, progress, quoted=False)


def kind_of(path: str) -> str:
    """csv or ndjson, by the file's name."""
    return "ndjson" if path.lower().endswith((".ndjson", ".jsonl")) else "csv"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_lines(lines: list[bytes], first: int) -> Iterator[tuple[int, Any]]:
    for at, line in enumerate(lines, first):
        if line.strip():
            try:
                yield at, json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield at, None
