"""Appending to, checkpointing and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from waiverdesk import clock
from waiverdesk.core.audit_chain import (
    GENESIS,
    Row,
    Verification,
    canonical,
    entry_hash,
    payload_json,
    timestamp,
    verify_chain,
)

from .models import AuditCheckpoint, AuditEntry

CHAIN_LOCK = 0x77616976  # the advisory lock that serialises appends on PostgreSQL

# The entry's time as text in UTC, read without the ORM's date parsing: PostgreSQL
# writes "2027-01-04 09:00:00.5+00" (the session is in UTC), SQLite holds the text
# Django stored, "2027-01-04 09:00:00.500000".
_AT_TEXT = {"postgresql": "at::text", "sqlite": "at || ''"}


def append(
    actor: str,
    action: str,
    obj: Any = None,
    payload: dict[str, Any] | None = None,
    *,
    object_type: str = "",
    object_ref: str = "",
    at: datetime | None = None,
) -> tuple[int, str]:
    """Append one entry inside the transaction of the change it records; return (seq, hash).

    Appends are serialised (an advisory lock on PostgreSQL, the write lock on
    SQLite) so every entry links to the one committed before it. The lock is
    held to the end of the transaction: call this last in it.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit entries are appended inside the transaction they record")
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_ref = object_ref or str(getattr(obj, "audit_ref", obj.pk))
    moment = at or clock.now()
    body = payload_json(payload or {})
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip; migration audit 0003 builds the same canonical text in SQL.
            cursor.execute(
                "SELECT * FROM audit_append(%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    CHAIN_LOCK,
                    moment,
                    timestamp(moment),
                    actor,
                    action,
                    object_type,
                    object_ref,
                    body,
                ],
            )
            return cursor.fetchone()
        # SQLite: the transaction already holds the database's write lock.
        (row,) = _chained(cursor, [(actor, action, object_type, object_ref, body, moment)])
        cursor.execute(_INSERT, row)
    return row[0], row[8]


def append_many(entries: list[tuple[str, str, str, str, dict[str, Any], datetime]]) -> None:
    """Append several entries (actor, action, object type, object ref, payload, at) at once,
    in order, inside the transaction they record: one lock, one round of inserts."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit entries are appended inside the transaction they record")
    if not entries:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        rows = _chained(
            cursor, [(actor, action, kind, ref, payload_json(payload), at)
                     for actor, action, kind, ref, payload, at in entries]
        )  # fmt: skip
        cursor.executemany(_INSERT, rows)


_INSERT = (
    "INSERT INTO audit_entry (seq, at, actor, action, object_type, object_ref, payload, "
    "prev_hash, hash, canonical) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _chained(cursor, entries) -> list[tuple]:
    """Rows for `entries` (payloads already JSON) that continue the chain from its head;
    the caller holds the chain's lock."""
    cursor.execute("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
    seq, prev = cursor.fetchone() or (0, GENESIS)
    rows = []
    for actor, action, object_type, object_ref, body, moment in entries:
        seq += 1
        text = canonical(seq, timestamp(moment), actor, action, object_type, object_ref, prev, body)
        digest = entry_hash(text)
        rows.append(
            (seq, connection.ops.adapt_datetimefield_value(moment), actor, action, object_type,
             object_ref, body, prev, digest, text)
        )  # fmt: skip
        prev = digest
    return rows


@transaction.atomic
def checkpoint(now: datetime | None = None) -> AuditCheckpoint | None:
    """Record the chain's current length and head, unless nothing was appended since the last."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        cursor.execute("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
        last = cursor.fetchone()
    if last is None or AuditCheckpoint.objects.filter(seq__gte=last[0]).exists():
        return None
    return AuditCheckpoint.objects.create(seq=last[0], hash=last[1], at=now or clock.now())


def _rows() -> Iterator[Row]:
    """Every entry in order, as plain text (no ORM conversions), streamed."""
    sql = (
        f"SELECT seq, {_AT_TEXT[connection.vendor]}, actor, action, object_type, object_ref, "
        "prev_hash, payload, canonical, hash FROM audit_entry ORDER BY seq"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams: the server keeps sending while this process hashes.
            with cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
                for seq, at, *rest in copy.rows():
                    yield (int(seq), _chain_time(at), *rest)
        else:
            cursor.execute(sql)
            for seq, at, *rest in cursor:
                yield (seq, _chain_time(at), *rest)


def _chain_time(text: str) -> str:
    """A stored time as timestamp() writes it: "2027-01-04T09:00:00.500000Z"."""
    text = text.removesuffix("+00")
    base, _, fraction = text.partition(".")
    return f"{base[:10]}T{base[11:19]}.{fraction:0<6}Z"


def verify() -> Verification:
    """Verify the whole chain, and that it agrees with every checkpoint."""
    checkpoints = dict(AuditCheckpoint.objects.values_list("seq", "hash"))
    return verify_chain(_rows(), checkpoints)


def entries_for(object_type: str, ref: str) -> list[AuditEntry]:
    """The audit entries about one object, oldest first."""
    return list(AuditEntry.objects.filter(object_type=object_type, object_ref=ref).order_by("seq"))
