"""Appending to, checkpointing and verifying the audit chain."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Subquery

from waiverdesk import clock
from waiverdesk.core.audit_chain import (
    GENESIS,
    Row,
    Verification,
    canonical,
    entry_hash,
    payload_json,
    timestamp,
    to_the_millisecond,
    verify_chain,
)
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.verifier import (
    Frontier,
    Tree,
    consistency_ranges,
    leaf_hash,
    signature_ok,
    statement,
)

from . import subjects
from .models import AuditCheckpoint, AuditEntry, RefusalTally

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
) -> None:
    """Append one entry inside the transaction of the change it records.

    Inside `atomic()` the entry is chained when that block ends, with the block's other
    entries; elsewhere at once, and the chain's lock (an advisory lock on PostgreSQL, the
    write lock on SQLite) is then held to the end of the transaction: call this last in it.
    """
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_ref = object_ref or str(getattr(obj, "audit_ref", obj.pk))
    append_many([(actor, action, object_type, object_ref, payload or {}, at or clock.now())])


def append_many(entries: list[tuple[str, str, str, str, dict[str, Any], datetime]]) -> None:
    """Append several entries (actor, action, object type, object ref, payload, at), in
    order, inside the transaction they record (see `append`)."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit entries are appended inside the transaction they record")
    # People by pseudonym and their free text sealed, as they are named now (a rename or
    # an erasure later in the transaction changes nothing here); see `subjects`.
    rows = [(actor, action, kind, ref, payload_json(payload), to_the_millisecond(at))
            for actor, action, kind, ref, payload, at in subjects.protect(entries)]  # fmt: skip
    deferred = getattr(connection, "audit_deferred", None)
    if deferred is None:
        _chain(rows)
        return
    for row in rows:
        waiting = _Deferred(row)
        # Django forgets the on-commit callbacks of a savepoint that rolls back: an entry
        # of a change undone is forgotten with them (see `atomic`).
        transaction.on_commit(waiting)
        deferred.append(waiting)


class _Deferred:
    """An entry waiting for the end of its `atomic()` block; nothing to do at commit."""

    def __init__(self, row: tuple) -> None:
        self.row = row

    def __call__(self) -> None:
        pass


@contextmanager
def atomic() -> Iterator[None]:
    """`transaction.atomic()` whose audit entries are chained as its last statements, in
    one round trip: on PostgreSQL the chain's lock is held only for the append and the
    commit, so concurrent changes overlap instead of queueing for the whole request.
    Entries appended in a savepoint that rolls back are not appended."""
    with transaction.atomic():
        if getattr(connection, "audit_deferred", None) is not None:
            yield  # the enclosing block appends them
            return
        connection.audit_deferred = deferred = []
        try:
            yield
            kept = {id(fn) for _ids, fn, _robust in connection.run_on_commit}
            connection.audit_deferred = None
            _chain([entry.row for entry in deferred if id(entry) in kept])
        finally:
            connection.audit_deferred = None


def _chain(rows: list[tuple]) -> None:
    """Chain and insert `rows` (actor, action, object type, object ref, payload JSON, at)."""
    if not rows:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip: the lock, the head, and every insert (migration audit 0007
            # builds the canonical text in SQL as core.audit_chain.canonical does).
            columns = list(zip(*rows, strict=True))
            cursor.execute(
                "SELECT audit_append_many(%s, %s::timestamptz[], %s::text[], %s::text[], "
                "%s::text[], %s::text[], %s::text[], %s::text[])",
                [CHAIN_LOCK, list(columns[5]), [timestamp(at) for at in columns[5]],
                 *map(list, columns[:5])],
            )  # fmt: skip
            return
        # SQLite: the transaction already holds the database's write lock.
        cursor.executemany(_INSERT, _chained(cursor, rows))


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
    """Record the chain's length, head and Merkle root, signed, unless nothing was appended
    since the last checkpoint. The tree is extended from the last signed checkpoint's
    frontier, so a checkpoint costs what was appended since, not the whole chain."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        cursor.execute("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
        last = cursor.fetchone()
    if last is None or AuditCheckpoint.objects.filter(seq__gte=last[0]).exists():
        return None
    size, head = last
    frontier = _frontier(AuditCheckpoint.objects.exclude(frontier="").order_by("-seq").first())
    for text in _canonicals(frontier.size, size):
        frontier.append(leaf_hash(text.encode()))
    moment = to_the_millisecond(now or clock.now())
    root = frontier.root().hex()
    key = signing_key()
    return AuditCheckpoint.objects.create(
        seq=size,
        hash=head,
        at=moment,
        root=root,
        public_key=public_key_hex(key),
        signature=key.sign(statement(size, root, head, timestamp(moment))).hex(),
        frontier="".join(h.hex() for h in frontier.hashes),
    )


def signing_key() -> Ed25519PrivateKey:
    """The configured checkpoint key; made (readable by its owner only) on first use when
    the setting names no file."""
    path = Path(settings.AUDIT_KEY_FILE)
    if not path.exists() and "WAIVERDESK_AUDIT_KEY" in os.environ:
        raise ImproperlyConfigured(f"WAIVERDESK_AUDIT_KEY names {path}, which does not exist")
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(pem)
        except FileExistsError:
            pass  # another process made it first: use theirs
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{path} does not hold an Ed25519 private key")
    return key


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _canonicals(after: int, upto: int, columns: str = "canonical") -> Iterator:
    """The canonical texts (or other `columns`, as tuples) of entries after..upto, in order,
    streamed."""
    sql = f"SELECT {columns} FROM audit_entry WHERE seq > %s AND seq <= %s ORDER BY seq"
    single = "," not in columns
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            query = sql.replace("%s", "{}").format(int(after), int(upto))
            with cursor.copy(f"COPY ({query}) TO STDOUT") as copy:
                rows = copy.rows()
                yield from (row[0] for row in rows) if single else rows
        else:
            cursor.execute(sql, [after, upto])
            yield from (row[0] for row in cursor) if single else cursor


def checkpoint_json(c: AuditCheckpoint) -> dict[str, Any]:
    """A signed checkpoint as the export and proofs carry it, with its witnesses'
    cosignatures."""
    return {
        "size": c.seq,
        "root": c.root,
        "head": c.hash,
        "at": timestamp(c.at),
        "public_key": c.public_key,
        "signature": c.signature,
        "cosignatures": [
            {"witness": s.witness, "public_key": s.public_key, "signature": s.signature}
            for s in c.cosignatures.all()
            if s.signature
        ],
    }


def export(out: IO[str]) -> int:
    """Write the signed checkpoints, then every entry as stored, as JSON lines (the
    checkpoints first, so a verifier reads the entries as a stream); return the count."""
    written = -AuditCheckpoint.objects.exclude(signature="").count()
    for line in export_lines():
        out.write(line)
        written += 1
    return written


def export_lines() -> Iterator[str]:
    """The lines of the export, read from the database as they are written."""
    signed = AuditCheckpoint.objects.exclude(signature="").prefetch_related("cosignatures")
    for c in signed.order_by("seq"):
        yield json.dumps({"kind": "checkpoint", **checkpoint_json(c)}) + "\n"
    for seq, digest, text in _canonicals(0, 2**62, "seq, hash, canonical"):
        yield (
            json.dumps({"kind": "entry", "seq": int(seq), "hash": digest, "canonical": text}) + "\n"
        )


def prove(object_ref: str, object_type: str = "waiver") -> dict[str, Any]:
    """Inclusion proofs of every entry about one object (a waiver by its reference) in the
    latest signed tree, taken now if the chain has grown since."""
    checkpoint()
    latest = AuditCheckpoint.objects.exclude(signature="").order_by("-seq").first()
    wanted = list(
        AuditEntry.objects.filter(
            object_type=object_type, object_ref=object_ref, seq__lte=latest.seq if latest else 0
        )
        .order_by("seq")
        .values("seq", "hash", "canonical")
    )
    if not wanted:
        raise Invalid([Problem("reference", "not_found", f"no audit entries about {object_ref}")])
    tree = Tree([leaf_hash(text.encode()) for text in _canonicals(0, latest.seq)])
    return {
        "reference": object_ref,
        "checkpoint": checkpoint_json(latest),
        "entries": [{**e, "proof": [p.hex() for p in tree.proof(e["seq"] - 1)]} for e in wanted],
    }


def consistency(old_size: int) -> dict[str, Any]:
    """The proof that the latest signed checkpoint's tree (taken now if the chain has grown
    since) extends the signed checkpoint of `old_size` entries: both checkpoints and the
    subtree heads (RFC 9162 §2.1.4), read in one pass over the entries between them."""
    checkpoint()
    signed = AuditCheckpoint.objects.exclude(signature="").prefetch_related("cosignatures")
    old = signed.filter(seq=old_size).first()
    if old is None:
        sizes = [str(s) for s in signed.order_by("-seq").values_list("seq", flat=True)[:5]]
        latest = f"the latest are of {', '.join(sizes)}" if sizes else "there is none yet"
        why = f"no signed checkpoint of {old_size} entries; {latest}"
        raise Invalid([Problem("from", "not_found", why)])
    new = signed.order_by("-seq").first()
    return {
        "old": checkpoint_json(old),
        "new": checkpoint_json(new),
        "proof": [h.hex() for h in consistency_proof(old.seq, new.seq)],
    }


def consistency_proof(old: int, new: int) -> list[bytes]:
    """The subtree heads that prove the tree of `old` entries a prefix of that of `new`. Those
    within the old tree are its checkpoint's stored frontier, so only the entries after it
    are read."""
    stored = _frontier(AuditCheckpoint.objects.filter(seq=old).exclude(frontier="").first())
    # One subtree per bit set in the size, largest first: 6 entries are [0, 4) and [4, 6).
    sizes = [1 << b for b in reversed(range(stored.size.bit_length())) if stored.size >> b & 1]
    known, start = {}, 0
    for size, head in zip(sizes, stored.hashes, strict=True):
        known[(start, start + size)] = head
        start += size
    return [known.get(r) or subtree_head(*r) for r in consistency_ranges(old, new)]


def _frontier(c: AuditCheckpoint | None) -> Frontier:
    """The subtree roots a checkpoint stored, to extend its tree without reading it again."""
    if c is None:
        return Frontier()
    return Frontier(c.seq, [bytes.fromhex(c.frontier[i : i + 64])
                            for i in range(0, len(c.frontier), 64)])  # fmt: skip


def subtree_head(start: int, end: int) -> bytes:
    """The Merkle tree head of entries start+1..end."""
    tree = Frontier()
    for text in _canonicals(start, end):
        tree.append(leaf_hash(text.encode()))
    return tree.root()


def record_read(actor: str, what: str, details: dict[str, Any]) -> None:
    """The trail records who read it: one entry per read, in its own transaction."""
    with transaction.atomic():
        append(actor, "audit.read", payload={"what": what, **details},
               object_type="audit", object_ref="trail")  # fmt: skip


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


def refusal(
    actor: str,
    action: str,
    object_type: str,
    object_ref: str,
    payload: dict[str, Any],
    window: timedelta = timedelta(minutes=1),
    at: datetime | None = None,
) -> None:
    """Record a refusal (or a failed sign-in) in its own transaction, without flooding: the
    same refusal again within `window` is counted, not written, and the next entry written
    for it says how many came between (`repeated`)."""
    moment = at or clock.now()
    key = hashlib.sha256(
        payload_json([actor, action, object_type, object_ref, payload]).encode()
    ).hexdigest()
    with transaction.atomic():
        tally, new = RefusalTally.objects.select_for_update().get_or_create(
            key=key, defaults={"written_at": moment}
        )
        if not new and moment - tally.written_at < window:
            RefusalTally.objects.filter(pk=tally.pk).update(repeats=F("repeats") + 1)
            return
        body = {**payload, "repeated": tally.repeats} if tally.repeats else payload
        append(actor[:150], action, None, body, object_type=object_type,
               object_ref=object_ref[:80], at=moment)  # fmt: skip
        RefusalTally.objects.filter(pk=tally.pk).update(written_at=moment, repeats=0)


def refused_at_door(door: str, request, code: str, message: str) -> None:
    """A refusal by the web UI or the API itself (a missing scope or role, a hidden
    request's 404) in the trail, as `refusal` writes it: `web.refused` or `api.refused`."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        where = f"{request.method} {request.path}"[:80]
        refusal(user.username, f"{door}.refused", "request", where,
                {"code": code, "message": message})  # fmt: skip


def verify() -> Verification:
    """Verify the whole chain, that it agrees with every checkpoint (each signed one by its
    signature and its Merkle root too), and that it still begins where the records begin:
    the oldest request's entries must be in it (a trail emptied, or emptied and begun again,
    does not verify)."""
    from waiverdesk.waivers.models import Waiver

    checkpoints = dict(AuditCheckpoint.objects.values_list("seq", "hash"))
    # Read before the entries stream in: no other query may run while they do (COPY).
    signed = {c.seq: c for c in AuditCheckpoint.objects.exclude(signature="").prefetch_related(
        "cosignatures")}  # fmt: skip
    unsigned: list[tuple[int, str]] = []

    def rows_into_the_tree() -> Iterator[Row]:
        tree = Frontier()
        for row in _rows():
            yield row
            tree.append(leaf_hash(row[8].encode()))
            taken = signed.get(tree.size)
            if taken is None or unsigned:
                continue
            if tree.root().hex() != taken.root:
                unsigned.append((taken.seq, "its Merkle root is not that of the entries"))
            elif not signature_ok(checkpoint_json(taken)):
                unsigned.append((taken.seq, "its signature does not verify"))

    result = verify_chain(rows_into_the_tree(), checkpoints)
    if result.ok and unsigned:
        seq, why = unsigned[0]
        return Verification(
            False, seq - 1, result.head, seq, f"the signed checkpoint at {seq}: {why}"
        )
    recorded = AuditEntry.objects.filter(object_type="waiver", object_ref=OuterRef("reference"))
    oldest = Waiver.objects.order_by("id").values("id")[:1]
    unrecorded = (
        Waiver.objects.filter(id=Subquery(oldest))
        .filter(~Exists(recorded))
        .values_list("reference", flat=True)
        .first()
    )  # one query
    if result.ok and unrecorded:
        reason = (f"the trail holds no entry about {unrecorded}, the oldest request: entries "
                  "were removed")  # fmt: skip
        return Verification(False, 0, result.head, first_bad_seq=1, reason=reason)
    return result


def entries_newest_first(
    *,
    waiver: str = "",
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries about a waiver, by an actor, of an action, from `since` to before `until`,
    numbered below `before` (each when given), newest first: at most `limit`."""
    conditions = {
        "object_ref": waiver,
        "action": action,
        "at__gte": since,
        "at__lt": until,
        "seq__lt": before,
        "actor__in": subjects.names_for(actor) if actor else None,
    }
    found = AuditEntry.objects.filter(
        **{k: v for k, v in conditions.items() if v not in (None, "")}
    )
    return list(found.order_by("-seq")[:limit])


def entries_for(object_type: str, ref: str) -> list[AuditEntry]:
    """The audit entries about one object, oldest first."""
    return list(AuditEntry.objects.filter(object_type=object_type, object_ref=ref).order_by("seq"))
