"""The audit hash chain: canonical bytes, hashes and verification, without a database.

An entry's canonical text is a JSON array, in this order:

    [seq, at, actor, action, object_type, object_ref, prev_hash, payload]

with `at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, no spaces, UTF-8, and the
payload as JSON with sorted keys. The entry's hash is the SHA-256 of that
text; `prev_hash` is the hash of the entry before it (64 zeros for the first).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')  # what JSON escapes when ensure_ascii is off


def payload_json(payload: dict[str, Any]) -> str:
    """The one canonical JSON text of a payload: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def to_the_millisecond(at: datetime) -> datetime:
    """A moment as the trail keeps it: to the millisecond, the precision Django's
    serializers write (`dumpdata`), so that a trail dumped and loaded still verifies."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def timestamp(at: datetime) -> str:
    """A time as it is written into the chain."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    seq: int,
    at: str,
    actor: str,
    action: str,
    object_type: str,
    object_ref: str,
    prev_hash: str,
    payload: str,
) -> str:
    """The exact text whose SHA-256 is the entry's hash."""
    fields = (at, actor, action, object_type, object_ref, prev_hash)
    if _NEEDS_ESCAPE.search("".join(fields)) is None:
        # The common case, twice as fast; the same text json.dumps would write.
        quoted = '","'.join(fields)
        return f'[{seq},"{quoted}",{payload}]'
    head = _dumps([seq, *fields])
    return f"{head[:-1]},{payload}]"


def entry_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    length: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""


# One stored row: seq, at (as timestamp() writes it), actor, action, object_type,
# object_ref, prev_hash, payload, stored canonical text, stored hash.
Row = tuple[int, str, str, str, str, str, str, str, str, str]


def verify_chain(rows: Iterable[Row], checkpoints: dict[int, str] | None = None) -> Verification:
    """Check rows in order and against checkpoints (length -> head); name the first bad entry."""
    checkpoints = checkpoints or {}
    expected_seq, head = 1, GENESIS
    for seq, at, actor, action, otype, oref, prev, payload, text, digest in rows:
        reason = ""
        if seq != expected_seq:
            reason = f"expected entry {expected_seq}, found {seq} (entries missing)"
        elif prev != head:
            reason = "its previous hash does not match the entry before it"
        elif canonical(seq, at, actor, action, otype, oref, prev, payload) != text:
            reason = "its fields do not match the bytes that were hashed"
        elif entry_hash(text) != digest:
            reason = "its hash does not match its bytes"
        elif checkpoints.get(seq, digest) != digest:
            reason = "its hash differs from the checkpoint taken at this length"
        if reason:
            return Verification(False, expected_seq - 1, head, expected_seq, reason)
        head, expected_seq = digest, expected_seq + 1
    length = expected_seq - 1
    beyond = [n for n in checkpoints if n > length]
    if beyond:
        return Verification(
            False,
            length,
            head,
            length + 1,
            f"a checkpoint recorded {max(beyond)} entries; the chain ends at "
            f"{length} (entries removed)",
        )
    return Verification(True, length, head)
