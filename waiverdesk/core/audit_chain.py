"""The audit hash chain: canonical bytes, hashes and verification, without a database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def payload_json(payload: dict[str, Any]) -> str:
    """The one canonical JSON text of a payload: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def timestamp(at: datetime) -> str:
    """A time as it is written into the chain: UTC, microseconds, ISO 8601."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    actor: str
    action: str
    object_type: str
    object_ref: str
    payload: str  # canonical JSON text
    prev_hash: str

    def canonical(self) -> str:
        """The exact text whose SHA-256 is the entry's hash."""
        d = json.dumps
        return (
            f'{{"seq":{self.seq},"at":{d(self.at)},"actor":{d(self.actor)},'
            f'"action":{d(self.action)},"object_type":{d(self.object_type)},'
            f'"object_ref":{d(self.object_ref)},"payload":{self.payload},'
            f'"prev":{d(self.prev_hash)}}}'
        )


def entry_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    ok: bool
    length: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""


def verify_chain(rows: Iterable[tuple[Entry, str, str]]) -> Verification:
    """Check (entry, stored canonical text, stored hash) rows in order; name the first bad one."""
    expected_seq, head, length = 1, GENESIS, 0
    for entry, canonical, stored_hash in rows:
        reason = ""
        if entry.seq != expected_seq:
            reason = f"expected entry {expected_seq}, found {entry.seq} (entries missing)"
        elif entry.prev_hash != head:
            reason = "its previous hash does not match the entry before it"
        elif entry.canonical() != canonical:
            reason = "its fields do not match the bytes that were hashed"
        elif entry_hash(canonical) != stored_hash:
            reason = "its hash does not match its bytes"
        if reason:
            return Verification(False, length, head, entry.seq, reason)
        head, length, expected_seq = stored_hash, length + 1, expected_seq + 1
    return Verification(True, length, head)
