"""Check a waiverdesk audit trail without waiverdesk: a single file that needs Python 3.11
and the `cryptography` package, nothing else. Hand it to an outside auditor with an export
(`waiverdesk audit export -o trail.jsonl`) or a proof (`waiverdesk audit prove REF -o proof.json`):

    python verifier.py trail trail.jsonl [--key PUBLIC_KEY_HEX]
    python verifier.py proof proof.json [--key PUBLIC_KEY_HEX]

`--key` pins the Ed25519 public key the vendor published; without it the signatures are
checked against the key the file names, and that key is printed for you to compare.
The exit status is 0 when everything verifies, 1 otherwise (the first problem is printed).

What is checked:
- every entry: its SHA-256 is its hash, it carries its number, and it names the hash of
  the entry before it (the hash chain), from entry 1 with no gap;
- every checkpoint: it is signed, the export holds all the entries it covers (a truncated
  tail is found), its head is the hash of its last entry, and its Merkle root is that of
  the entries it covers;
- a proof: the checkpoint is signed, and each entry's audit path leads to its root.

The Merkle tree is RFC 6962/9162's: a leaf is SHA-256(0x00 || entry), a node
SHA-256(0x01 || left || right), and a tree of n leaves splits at the largest power of two
below n. An entry is its canonical text in UTF-8: the JSON array
[seq, at, actor, action, object_type, object_ref, prev_hash, payload].
A checkpoint's signature is Ed25519 over the text of `statement()` below. An export is
JSON lines, its checkpoints first and then its entries in order, so that it is read as a
stream whatever its size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The roots of the perfect subtrees that make up a tree of `size` leaves, largest first:
    enough to append leaves and to compute the tree head, in O(log n) memory."""

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()):
        self.size, self.hashes = size, list(hashes)

    def append(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        n = self.size
        while n & 1:  # two subtrees of one size merge, like a carry in binary addition
            right = self.hashes.pop()
            self.hashes[-1] = node_hash(self.hashes[-1], right)
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        head = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            head = node_hash(left, head)
        return head


def root(leaves: Iterable[bytes]) -> bytes:
    """The tree head of `leaves` (leaf hashes); the empty tree's is SHA-256 of nothing."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Tree:
    """Every level of a tree, for inclusion proofs: a level pairs the nodes of the one
    below, and an odd last node moves up unchanged (the same tree as RFC 6962's split)."""

    def __init__(self, leaves: list[bytes]):
        self.levels = [leaves]
        while len(level := self.levels[-1]) > 1:
            pairs = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(pairs + level[-1:] if len(level) % 2 else pairs)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf `index` (RFC 9162 §2.1.3.1), from the leaf up."""
        if not 0 <= index < self.size:
            raise ValueError(f"no leaf {index} in a tree of {self.size}")
        path = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path


def inclusion_proof(index: int, leaves: list[bytes]) -> list[bytes]:
    return Tree(leaves).proof(index)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], head: bytes) -> bool:
    """Whether `proof` shows leaf hash `leaf` at `index` in the tree of `size` with `head`
    (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False  # the proof is longer than the tree is deep
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == head


def statement(size: int, root_hex: str, head: str, at: str) -> bytes:
    """The text a checkpoint's signature covers."""
    lines = ["waiverdesk audit checkpoint v1", f"size {size}", f"root {root_hex}", f"head {head}"]
    return "\n".join([*lines, f"at {at}", ""]).encode()


def signature_ok(checkpoint: dict, key: str | None = None) -> bool:
    """Whether the checkpoint is signed by its public key (and that is `key`, if given)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = checkpoint["public_key"]
    if key and key.lower() != public.lower():
        return False
    text = statement(checkpoint["size"], checkpoint["root"], checkpoint["head"], checkpoint["at"])
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
            bytes.fromhex(checkpoint["signature"]), text
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Result:
    ok: bool
    message: str


def check_entry(entry: dict, seq: int, prev: str) -> str:
    """Why `entry` is not entry `seq` after one whose hash is `prev`; "" if it is."""
    text = entry["canonical"]
    if hashlib.sha256(text.encode()).hexdigest() != entry["hash"]:
        return "its text does not hash to its recorded hash"
    try:
        fields = json.loads(text)
    except ValueError:
        return "its text is not a JSON array"
    if fields[0] != seq or entry.get("seq") != seq:
        return f"it is numbered {fields[0]} where entry {seq} was expected"
    if fields[6] != prev:
        return "it does not name the hash of the entry before it"
    return ""


def verify_trail(lines: Iterable[str], key: str | None = None) -> Result:
    """Check an export as a stream: its checkpoints (which come first), then the chain of
    entries, then every checkpoint against the entries it covers."""
    checkpoints, sizes, covered = [], set(), {}  # size -> (head, root) of the entries up to it
    prev, frontier, seq = GENESIS, Frontier(), 0
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if record["kind"] == "checkpoint":
            if seq:
                return Result(False, "a checkpoint stands among the entries; they come first")
            checkpoints.append(record)
            sizes.add(record["size"])
            continue
        seq += 1
        if problem := check_entry(record, seq, prev):
            return Result(False, f"entry {seq}: {problem}")
        prev = record["hash"]
        frontier.append(leaf_hash(record["canonical"].encode()))
        if seq in sizes:
            covered[seq] = (prev, frontier.root().hex())
    for c in sorted(checkpoints, key=lambda c: c["size"]):
        size = c["size"]
        if size > seq:
            return Result(False, f"the checkpoint of {c['at']} covers {size} entries; "
                                 f"the export holds {seq}")  # fmt: skip
        if not signature_ok(c, key):
            return Result(False, f"the checkpoint at {size} is not signed by the expected key")
        head, root_hex = covered[size]
        if head != c["head"]:
            return Result(False, f"entry {size} is not the head its checkpoint signed")
        if root_hex != c["root"]:
            return Result(False, f"the entries up to {size} do not make their checkpoint's root")
    keys = ", ".join(sorted({c["public_key"] for c in checkpoints})) or "no key"
    signed = f"{len(checkpoints)} signed checkpoint{'' if len(checkpoints) == 1 else 's'}"
    return Result(True, f"{seq} entries verify, with {signed} by {keys}")


def verify_proof(document: dict, key: str | None = None) -> Result:
    """Check a proof: a signed checkpoint, and each entry's path to its root."""
    c = document["checkpoint"]
    if not signature_ok(c, key):
        return Result(False, "the checkpoint is not signed by the expected key")
    head = bytes.fromhex(c["root"])
    for entry in document["entries"]:
        text = entry["canonical"]
        proof = [bytes.fromhex(p) for p in entry["proof"]]
        if hashlib.sha256(text.encode()).hexdigest() != entry["hash"] or not verify_inclusion(
            entry["seq"] - 1, c["size"], leaf_hash(text.encode()), proof, head
        ):
            return Result(False, f"entry {entry['seq']} is not in the signed tree")
    n, ref = len(document["entries"]), document["reference"]
    return Result(True, f"{n} entries of {ref} are in the tree of {c['size']} signed at "
                        f"{c['at']} by {c['public_key']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a waiverdesk audit export or proof.")
    parser.add_argument("what", choices=["trail", "proof"])
    parser.add_argument("file")
    parser.add_argument("--key", help="the Ed25519 public key (hex) the signatures must be by")
    args = parser.parse_args(argv)
    with open(args.file, encoding="utf-8") as f:
        try:
            if args.what == "trail":
                result = verify_trail(f, args.key)
            else:
                result = verify_proof(json.load(f), args.key)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            result = Result(False, f"the file is malformed ({type(exc).__name__}: {exc})")
    print(("VERIFIED: " if result.ok else "FAILED: ") + result.message)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
