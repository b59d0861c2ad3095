"""Taking in usage records: each row checked, good rows kept, bad rows reported by their
position, and a record already received (same `record_id`) never counted twice.

A record: `record_id`, `customer` (external id), `product` (code), `metric`, `quantity`,
and either `period_start` and `period_end` (dates) or `timestamp` (ISO 8601).

Records are staged as text in a scratch table, a chunk at a time, and checked there by
one query, so the checks are the same whichever way records arrive: an API batch, an
NDJSON file, or a CSV file, which PostgreSQL reads itself (COPY) when its lines are
records, several chunks at once. One transaction per chunk: what a report acknowledges
is committed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import IO, Any

import psycopg
from django.db import DataError, IntegrityError, OperationalError, connection, transaction

CHUNK = 50_000
WORKERS = min(4, os.cpu_count() or 1)
FIELDS = ("record_id", "customer", "product", "metric", "quantity", "period_start",
          "period_end", "timestamp")  # fmt: skip
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


def ingest(records: Iterable[tuple[int, Any]], now: datetime) -> Report:
    """Check and store records given with their position (index or line)."""
    report, rows = Report(), []
    for position, record in records:
        if isinstance(record, dict):
            rows.append((position, *(_text(record.get(name)) for name in FIELDS)))
        else:
            report.rejected.append({"position": position, "errors": [_NOT_A_RECORD]})
        if len(rows) >= CHUNK:
            report.add(_keep(rows, FIELDS, now))
            rows = []
    report.add(_keep(rows, FIELDS, now))
    report.rejected.sort(key=lambda bad: bad["position"])
    return report


def import_file(
    handle: IO[bytes], kind: str, now: datetime, progress: Callable[[int], Any] | None = None
) -> Report:
    """Import a CSV file (with a header) or an NDJSON file, a chunk of lines at a time;
    `progress` is told the number of lines read after each chunk. On PostgreSQL, outside a
    transaction, chunks are stored by as many connections at once as there are cores."""
    if kind == "csv":
        header = next(csv.reader([handle.readline().decode("utf-8-sig")]), [])
        header = [name.strip() for name in header]
        columns = tuple(_column(name, i, header) for i, name in enumerate(header))
        chunks = _chunks(handle, first=2)

        def keep(first: int, lines: list[bytes]) -> Report:
            return _keep_csv(lines, first, columns, now)
    else:
        chunks = _chunks(handle, first=1)

        def keep(first: int, lines: list[bytes]) -> Report:
            return ingest(_json_lines(lines, first), now)

    def read() -> Iterator[tuple[int, list[bytes]]]:
        for first, lines in chunks:
            yield first, lines
            if progress:
                progress(first + len(lines) - 1)

    at_once = connection.vendor == "postgresql" and not connection.in_atomic_block
    report = Report()
    for done in _in_parallel(read(), keep) if at_once else (keep(*c) for c in read()):
        report.add(done)
    report.rejected.sort(key=lambda bad: bad["position"])
    return report


def _in_parallel(chunks: Iterable[tuple], keep: Callable[..., Report]) -> list[Report]:
    """keep(*chunk) for every chunk, in WORKERS threads with a connection each; the first
    failure stops the rest and is raised (the chunks already kept stay committed)."""
    work: queue.Queue = queue.Queue(maxsize=WORKERS)
    done: list[Report] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            while (chunk := work.get()) is not None:
                if not failed:
                    try:
                        done.append(keep(*chunk))
                    except BaseException as exc:  # raised by the caller's thread below
                        failed.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        for chunk in chunks:
            if failed:
                break
            work.put(chunk)
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if failed:
        raise failed[0]
    return done


def kind_of(path: str) -> str:
    """csv or ndjson, by the file's name."""
    return "csv" if path.lower().endswith(".csv") else "ndjson"


def _chunks(handle: IO[bytes], first: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, lines) a chunk at a time; a chunk never ends inside a
    quoted CSV field, which may hold line breaks."""
    while lines := list(islice(handle, CHUNK)):
        quotes = b"".join(lines).count(b'"')
        while quotes % 2 and (line := handle.readline()):
            lines.append(line)
            quotes += line.count(b'"')
        yield first, lines
        first += len(lines)


def _keep_csv(lines: list[bytes], first: int, columns: tuple[str, ...], now: datetime) -> Report:
    """One chunk of CSV lines, read in one pass (by PostgreSQL itself: COPY) when each line
    is one well-formed record; anything else (a short row, a line break in a quoted field,
    bad UTF-8) is read here row by row, with each row's line number."""
    try:
        return _keep(b"".join(lines), columns, now, offset=first - 1, lines=len(lines))
    except _NotOneRecordPerLine:
        pass  # rolled back
    text = b"".join(lines).decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    width = len(columns)
    rows = [
        (first - 1 + reader.line_num, *row[:width], *[None] * (width - len(row)))
        for row in reader
        if row
    ]
    return _keep(rows, columns, now)


class _NotOneRecordPerLine(Exception):
    pass


def _keep(
    rows: list[tuple] | bytes,
    columns: tuple[str, ...],
    now: datetime,
    offset: int = 0,
    lines: int = 0,
) -> Report:
    """Stage rows ((position, *values of `columns`)), or CSV text of `lines` records, then
    keep the good ones not yet received; one transaction (a savepoint inside the caller's).
    Each bad row's problems are looked for only when some row was not kept."""
    if not rows:
        return Report()
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres:  # it misjudges a scratch table; compiling those plans costs more
            cursor.execute("SET LOCAL jit = off")  # than running them
        cursor.execute(_STAGING[connection.vendor].format(extra="".join(
            f", {name} text" for name in columns if name not in FIELDS)))  # fmt: skip
        staged = _stage(cursor, rows, columns, lines)
        stamp = connection.ops.adapt_datetimefield_value(now)
        if postgres:
            kept = _insert_postgresql(cursor, stamp)
        else:
            cursor.execute(_insert_sql("INSERT OR IGNORE", " ORDER BY n"), [stamp])
            kept = cursor.rowcount
        rejected = _problems(cursor, offset) if kept < staged else []
        cursor.execute("DROP TABLE usage_incoming")  # also when this is a savepoint
    return Report(accepted=kept, duplicates=staged - kept - len(rejected), rejected=rejected)


def _stage(cursor, rows: list[tuple] | bytes, columns: tuple[str, ...], lines: int) -> int:
    """Fill the scratch table with rows, or with CSV text of `lines` records (numbered from
    1 in order); the number of rows staged."""
    names = ", ".join(columns)
    if connection.vendor == "sqlite":
        if isinstance(rows, bytes):  # through sqlite3 itself: Django's wrapper costs more
            try:
                reader = csv.reader(io.StringIO(rows.decode(), newline=""))
                marks = ", ".join(["?"] * len(columns))
                staged = connection.connection.executemany(
                    f"INSERT INTO usage_incoming ({names}) VALUES ({marks})", reader
                ).rowcount
            except (UnicodeDecodeError, sqlite3.ProgrammingError):  # a row of another width
                raise _NotOneRecordPerLine from None
            if staged != lines:
                raise _NotOneRecordPerLine
            return lines
        marks = ", ".join(["%s"] * (len(columns) + 1))
        cursor.executemany(f"INSERT INTO usage_incoming (n, {names}) VALUES ({marks})", rows)
        return len(rows)
    if isinstance(rows, bytes):
        try:
            with cursor.cursor.copy(
                f"COPY usage_incoming ({names}) FROM STDIN WITH (FORMAT csv)"
            ) as copy:
                copy.write(rows)
        except psycopg.DataError:  # a row of the wrong width, bad UTF-8
            raise _NotOneRecordPerLine from None
        if cursor.cursor.rowcount != lines:
            raise _NotOneRecordPerLine
        return lines
    with cursor.cursor.copy(f"COPY usage_incoming (n, {names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def _insert_postgresql(cursor, stamp: str) -> int:
    """Insert the good rows; the number inserted. First trusting that no record was received
    before and that every date of the right shape is a real one (cheaper than ON CONFLICT
    and checking each date); then, when that fails, checking."""
    try:
        with transaction.atomic():
            cursor.execute(_insert_sql("INSERT", trusting=True), [stamp])
        return cursor.rowcount
    except (DataError, IntegrityError):  # a date such as 2027-02-30, or a record again
        pass
    except OperationalError as exc:
        # Another import sending the same records, each waiting for the other: PostgreSQL
        # rolled this one back.
        if not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected):
            raise
    cursor.execute(_insert_sql("INSERT", " ORDER BY n ON CONFLICT (record_id) DO NOTHING"),
                   [stamp])  # fmt: skip
    return cursor.rowcount


def _problems(cursor, offset: int) -> list[dict[str, Any]]:
    """Each staged row that fails a check, with its problems."""
    cursor.execute(f"SELECT n, {', '.join(c for c, _ in _CHECKS)} FROM ({_checked()}) k "
                   f"WHERE {' OR '.join(c for c, _ in _CHECKS)}")  # fmt: skip
    return [
        {"position": n + offset, "errors": [problem for (_, problem), bad in zip(_CHECKS, flags,
                                                                               strict=True) if bad]}
        for n, *flags in cursor.fetchall()
    ]  # fmt: skip


def _problem(name: str, code: str, message: str) -> dict[str, str]:
    return {"field": name, "code": code, "message": message}


_NOT_A_RECORD = _problem("record", "invalid", "a record is an object of fields")
_PERIOD = "give period_start and period_end (YYYY-MM-DD), or an ISO 8601 timestamp"

# (a condition on a checked row that is true when the row is bad, the problem reported)
_CHECKS = [
    ("coalesce(length(record_id), 0) NOT BETWEEN 1 AND 100",
     _problem("record_id", "required", "give each record its own id")),
    ("customer_id IS NULL", _problem("customer", "unknown_customer", "no such customer")),
    ("product_id IS NULL", _problem("product", "unknown_product", "no such product")),
    ("coalesce(length(metric), 0) NOT BETWEEN 1 AND 60",
     _problem("metric", "required", "name the metric, e.g. seats")),
    ("quantity IS NULL", _problem("quantity", "invalid", "a number, zero or more")),
    ("period_start IS NULL OR period_end IS NULL", _problem("period", "invalid", _PERIOD)),
    ("period_end < period_start",
     _problem("period_end", "before_start", "the period ends before it starts")),
]  # fmt: skip
_GOOD = " AND ".join(f"NOT ({condition})" for condition, _ in _CHECKS)

# What differs between the engines: the scratch table; a valid day (YYYY-MM-DD, a real
# date) as a date, else NULL; whether a timestamp is valid ISO 8601; a quantity (a number,
# zero or more) as a number, else NULL. PostgreSQL before 16 has no cast that fails softly,
# so its casts are guarded by patterns.
_STAGING = {
    "postgresql": "CREATE TEMP TABLE usage_incoming (n bigint GENERATED BY DEFAULT AS "
    "IDENTITY, record_id text, customer text, product text, metric text, quantity text, "
    "period_start text, period_end text, timestamp text{extra})",
    "sqlite": "CREATE TEMP TABLE usage_incoming (n INTEGER PRIMARY KEY, record_id TEXT, "
    "customer TEXT, product TEXT, metric TEXT, quantity NUMERIC, period_start TEXT, "
    "period_end TEXT, timestamp TEXT{extra})",
}


def _day(text: str, trusting: bool) -> str:
    """SQL: the day `text` gives (YYYY-MM-DD, a real date), or NULL. On PostgreSQL,
    `trusting` casts every text of the right shape, and fails on one such as 2027-02-30."""
    if connection.vendor == "sqlite":
        return f"CASE WHEN date({text}, '+0 days') = {text} AND {text} >= '0001' THEN {text} END"
    t = f"({text})"
    shape = f"{t} LIKE '____-__-__' AND ltrim({t}, '-0123456789') = ''"
    if trusting:
        return f"CASE WHEN {shape} THEN {t}::date END"
    (year, month, day), last = (
        (f"substr({t}, {i}, {n})::int" for i, n in ((1, 4), (6, 2), (9, 2))),
        f"extract(day FROM (left({t}, 8) || '01')::date + interval '1 month - 1 day')",
    )
    return (
        f"CASE WHEN {shape} AND {year} > 0 AND {month} BETWEEN 1 AND 12 AND {day} >= 1 "
        f"THEN CASE WHEN {day} <= {last} THEN {t}::date END END"
    )


_MOMENT = {
    "postgresql": r"i.timestamp ~ '^\d{4}-\d\d-\d\d"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)?$'",
    "sqlite": "datetime(i.timestamp) IS NOT NULL",
}
_QUANTITY = {
    "postgresql": r"""CASE
        WHEN ltrim(i.quantity, '.0123456789') = '' AND length(i.quantity) <= 30
            AND length(i.quantity) - length(replace(i.quantity, '.', '')) <= 1
            AND i.quantity NOT IN ('', '.') THEN i.quantity::float8
        WHEN i.quantity ~ '^\s*\+?(\d{1,20}(\.\d{0,20})?|\.\d{1,20})([eE][+-]?\d{1,2})?\s*$'
            THEN i.quantity::float8 END""",
    "sqlite": "CASE WHEN typeof(i.quantity) IN ('integer', 'real') AND i.quantity >= 0 "
    "AND i.quantity < 1e300 THEN i.quantity END",
}


def _checked(trusting: bool = False) -> str:
    """The staged rows as they would be stored, NULL where a value is not valid."""
    vendor = connection.vendor
    day = f"WHEN {_MOMENT[vendor]} THEN substr(i.timestamp, 1, 10) END"
    start = f"CASE WHEN coalesce(i.timestamp, '') = '' THEN i.period_start {day}"
    end = f"CASE WHEN coalesce(i.timestamp, '') = '' THEN i.period_end {day}"
    # A subquery with OFFSET or LIMIT is computed as it stands: SQLite then works out each
    # row's values once, not once for each check that uses them, and PostgreSQL does not
    # plan the joins under the checks, which it guesses leave a single row (and so would
    # look each row's customer up by reading them all).
    fence = " OFFSET 0" if vendor == "postgresql" else " LIMIT -1"
    return f"""
        SELECT i.n, trim(i.record_id) AS record_id, c.id AS customer_id,
            p.id AS product_id, trim(i.metric) AS metric, {_QUANTITY[vendor]} AS quantity,
            {_day(start, trusting)} AS period_start, {_day(end, trusting)} AS period_end
        FROM usage_incoming i
        LEFT JOIN directory_customer c ON c.external_id = i.customer
        LEFT JOIN directory_product p ON p.code = i.product{fence}"""


def _insert_sql(head: str, tail: str = "", trusting: bool = False) -> str:
    return (f"{head} INTO usage_usagerecord ({', '.join(_COLUMNS)}) SELECT record_id, "
            "customer_id, product_id, metric, quantity, period_start, period_end, %s "
            f"FROM ({_checked(trusting)}) k WHERE {_GOOD}{tail}")  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _column(name: str, index: int, header: list[str]) -> str:
    """The scratch column for a CSV header's column: its own name when it is a field (the
    first time), a column that is ignored otherwise."""
    return name if name in FIELDS and name not in header[:index] else f"unused_{index}"


def _json_lines(lines: list[bytes], first: int) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, first):
        if line.strip():
            try:
                yield number, json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield number, None
