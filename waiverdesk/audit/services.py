"""Appending to and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from waiverdesk import clock
from waiverdesk.core.audit_chain import (
    GENESIS,
    Entry,
    Verification,
    entry_hash,
    payload_json,
    timestamp,
    verify_chain,
)

from .models import AuditEntry, AuditHead

VERIFY_BATCH = 5000


def append(
    actor: str,
    action: str,
    obj: Any = None,
    payload: dict[str, Any] | None = None,
    *,
    object_type: str = "",
    object_ref: str = "",
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry; must run inside the transaction of the change it records.

    Locks the chain head, so concurrent writers append one after another and
    every entry links to the one committed before it. Call it last in a
    transaction, so the head lock is held for as short a time as possible.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit entries are appended inside the transaction they record")
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_ref = object_ref or str(getattr(obj, "audit_ref", obj.pk))
    head = _locked_head()
    moment = at or clock.now()
    entry = Entry(
        seq=head.seq + 1,
        at=timestamp(moment),
        actor=actor,
        action=action,
        object_type=object_type,
        object_ref=object_ref,
        payload=payload_json(payload or {}),
        prev_hash=head.hash,
    )
    canonical = entry.canonical()
    digest = entry_hash(canonical)
    row = AuditEntry.objects.create(
        seq=entry.seq,
        at=moment,
        actor=actor,
        action=action,
        object_type=object_type,
        object_ref=object_ref,
        payload=entry.payload,
        prev_hash=entry.prev_hash,
        hash=digest,
        canonical=canonical,
    )
    AuditHead.objects.filter(pk=1).update(seq=entry.seq, hash=digest)
    return row


def _locked_head() -> AuditHead:
    try:
        return AuditHead.objects.select_for_update().get(pk=1)
    except AuditHead.DoesNotExist:
        # The first append ever: create the head, tolerating a concurrent first append.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, %s) "
                "ON CONFLICT (id) DO NOTHING",
                [GENESIS],
            )
        return AuditHead.objects.select_for_update().get(pk=1)


def _rows() -> Iterator[tuple[Entry, str, str]]:
    # Keyset pagination keeps memory flat on millions of entries.
    last = 0
    fields = (
        "seq",
        "at",
        "actor",
        "action",
        "object_type",
        "object_ref",
        "payload",
        "prev_hash",
        "canonical",
        "hash",
    )
    while True:
        batch = list(
            AuditEntry.objects.filter(seq__gt=last)
            .order_by("seq")
            .values_list(*fields)[:VERIFY_BATCH]
        )
        if not batch:
            return
        for seq, at, actor, action, otype, oref, payload, prev, canonical, digest in batch:
            yield (
                Entry(seq, timestamp(at), actor, action, otype, oref, payload, prev),
                canonical,
                digest,
            )
        last = batch[-1][0]


def verify() -> Verification:
    """Verify the whole chain, and that it ends where the head says it does."""
    result = verify_chain(_rows())
    if not result.ok:
        return result
    head = AuditHead.objects.filter(pk=1).first() or AuditHead(seq=0, hash=GENESIS)
    if (head.seq, head.hash) != (result.length, result.head):
        return Verification(
            False,
            result.length,
            result.head,
            result.length + 1,
            f"the chain ends at entry {result.length}, but entries up to {head.seq} were written",
        )
    return result


def entries_for(obj_type: str, ref: str) -> list[AuditEntry]:
    """The audit entries about one object, oldest first."""
    return list(AuditEntry.objects.filter(object_type=obj_type, object_ref=ref).order_by("seq"))


@transaction.atomic
def record(actor: str, action: str, obj: Any = None, payload: dict | None = None) -> AuditEntry:
    """Append an entry in a transaction of its own (for events with no other write)."""
    return append(actor, action, obj, payload)
