"""Check a waiverdesk audit trail without waiverdesk: a single file that needs Python 3.11
and the `cryptography` package, nothing else. Hand it to an outside auditor with an export
(`waiverdesk audit export -o trail.jsonl`) or a proof (`waiverdesk audit prove REF -o proof.json`):

    python verifier.py trail trail.jsonl [--key PUBLIC_KEY_HEX] [--witness-key HEX …]
    python verifier.py proof proof.json [--key PUBLIC_KEY_HEX]
    python verifier.py consistency proof.json [--key PUBLIC_KEY_HEX] [--witness-key HEX …]

`--key` pins the Ed25519 public key the vendor published; without it the signatures are
checked against the key the file names, and that key is printed for you to compare.
The exit status is 0 when everything verifies, 1 otherwise (the first problem is printed).

What is checked:
- every entry: its SHA-256 is its hash, it carries its number, and it names the hash of
  the entry before it (the hash chain), from entry 1 with no gap;
- every checkpoint: it is signed, the export holds all the entries it covers (a truncated
  tail is found), its head is the hash of its last entry, and its Merkle root is that of
  the entries it covers;
- a proof: the checkpoint is signed, and each entry's audit path leads to its root;
- a consistency proof (`waiverdesk audit consistency OLD_SIZE -o proof.json`): both
  checkpoints are signed, and the newer tree extends the older one (RFC 9162 §2.1.4), so
  nothing the older checkpoint covered was changed, removed or reordered since;
- with `--witness-key` (each witness's Ed25519 key): the latest checkpoint carries that
  witness's cosignature, and every cosignature by it verifies. A witness cosigns a
  checkpoint only after checking that it extends the last one it cosigned, so a trail
  rewritten for one reader and not another cannot carry the witnesses' cosignatures.

The Merkle tree is RFC 6962/9162's: a leaf is SHA-256(0x00 || entry), a node
SHA-256(0x01 || left || right), and a tree of n leaves splits at the largest power of two
below n. An entry is its canonical text in UTF-8: the JSON array
[seq, at, actor, action, object_type, object_ref, prev_hash, payload].
A checkpoint's signature is Ed25519 over the text of `statement()` below, a witness's
cosignature over that of `cosigned()`. An export is
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

    def subtree(self, start: int, end: int) -> bytes:
        """The head of leaves start..end, a subtree of this tree: `start` a multiple of a
        power of two that `end - start` fills, or `end` the tree's last leaf."""
        level = (end - start - 1).bit_length()
        return self.levels[level][start >> level]

    def consistency(self, old: int) -> list[bytes]:
        """The proof that the tree of the first `old` leaves is a prefix of this one."""
        return [self.subtree(start, end) for start, end in consistency_ranges(old, self.size)]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The subtrees (first leaf, end) whose heads prove that the tree of `old` leaves is a
    prefix of the tree of `new` (RFC 9162 §2.1.4.1), in the proof's order; they do not
    overlap, so one pass over the leaves computes them all."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    ranges, start, end, whole = [], 0, new, True
    while old != end:  # SUBPROOF(old - start, D[start:end], whole)
        k = 1 << ((end - start - 1).bit_length() - 1)
        if old - start <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, whole = start + k, False
    if not whole:
        ranges.append((start, end))
    return ranges[::-1]


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


def verify_consistency(
    old: int, new: int, old_head: bytes, new_head: bytes, proof: list[bytes]
) -> bool:
    """Whether `proof` shows that the tree of `old` leaves with `old_head` is a prefix of
    the tree of `new` leaves with `new_head` (RFC 9162 §2.1.4.2)."""
    if not 0 < old <= new:
        return False
    if old == new:
        return not proof and old_head == new_head
    if old & (old - 1) == 0:  # a power of two: the old tree is a subtree of the new
        proof = [old_head, *proof]
    if not proof:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_head and sr == new_head


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


def cosigned(checkpoint: dict) -> bytes:
    """The text a witness's cosignature of a checkpoint covers."""
    c = checkpoint
    return b"waiverdesk witness cosignature v1\n" + statement(c["size"], c["root"], c["head"],
                                                              c["at"])  # fmt: skip


def cosignature_ok(checkpoint: dict, cosignature: dict, key: str | None = None) -> bool:
    """Whether `cosignature` is a witness's signature of the checkpoint (by `key`, if given)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = cosignature.get("public_key", "")
    if key and key.lower() != str(public).lower():
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
            bytes.fromhex(cosignature.get("signature", "")), cosigned(checkpoint)
        )
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        return False
    return True


def witnessed(checkpoints: list[dict], witness_keys: list[str]) -> str:
    """Why the checkpoints are not cosigned by every witness key given; "" if they are: each
    key's cosignatures must verify, and the last checkpoint must carry one."""
    for key in witness_keys:
        for c in checkpoints:
            cosignatures = c.get("cosignatures", [])
            by_key = [s for s in cosignatures if s["public_key"].lower() == key.lower()]
            if any(not cosignature_ok(c, s, key) for s in by_key):
                return (f"the witness {key}'s cosignature of the checkpoint at {c['size']} "
                        "does not verify")  # fmt: skip
            if c is checkpoints[-1] and not by_key:
                return f"the checkpoint at {c['size']} is not cosigned by the witness {key}"
    return ""


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


def verify_trail(lines: Iterable[str], key: str | None = None,
                 witness_keys: Iterable[str] = ()) -> Result:  # fmt: skip
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
    if problem := witnessed(sorted(checkpoints, key=lambda c: c["size"]), list(witness_keys)):
        return Result(False, problem)
    keys = ", ".join(sorted({c["public_key"] for c in checkpoints})) or "no key"
    signed = f"{len(checkpoints)} signed checkpoint{'' if len(checkpoints) == 1 else 's'}"
    return Result(True, f"{seq} entries verify, with {signed} by {keys}{_by(witness_keys)}")


def _by(witness_keys: Iterable[str]) -> str:
    keys = list(witness_keys)
    return f", cosigned by {len(keys)} witness{'' if len(keys) == 1 else 'es'}" if keys else ""


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


def verify_consistency_proof(document: dict, key: str | None = None,
                             witness_keys: Iterable[str] = ()) -> Result:  # fmt: skip
    """Check a consistency proof: two signed checkpoints, the newer extending the older (and
    cosigned by each witness key given)."""
    old, new = document["old"], document["new"]
    key = key or old["public_key"]  # without a pinned key, both by the same one
    for c in (old, new):
        if not signature_ok(c, key):
            return Result(False, f"the checkpoint of {c['size']} entries is not signed by the "
                                 "expected key")  # fmt: skip
    proof = [bytes.fromhex(p) for p in document["proof"]]
    if not verify_consistency(old["size"], new["size"], bytes.fromhex(old["root"]),
                              bytes.fromhex(new["root"]), proof):  # fmt: skip
        return Result(False, f"the tree of {new['size']} entries signed at {new['at']} does not "
                             f"extend the tree of {old['size']} signed at {old['at']}")  # fmt: skip
    if problem := witnessed([new], list(witness_keys)):
        return Result(False, problem)
    return Result(True, f"the tree of {new['size']} entries signed at {new['at']} extends the "
                        f"tree of {old['size']} signed at {old['at']}, both by "
                        f"{new['public_key']}{_by(witness_keys)}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a waiverdesk audit export or proof.")
    parser.add_argument("what", choices=["trail", "proof", "consistency"])
    parser.add_argument("file")
    parser.add_argument("--key", help="the Ed25519 public key (hex) the signatures must be by")
    parser.add_argument("--witness-key", action="append", default=[], dest="witness_keys",
                        help="a witness's Ed25519 public key (hex): the latest checkpoint must "
                             "carry its cosignature (repeat for several witnesses)")  # fmt: skip
    args = parser.parse_args(argv)
    with open(args.file, encoding="utf-8") as f:
        try:
            if args.what == "trail":
                result = verify_trail(f, args.key, args.witness_keys)
            elif args.what == "proof":
                result = verify_proof(json.load(f), args.key)
            else:
                result = verify_consistency_proof(json.load(f), args.key, args.witness_keys)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            result = Result(False, f"the file is malformed ({type(exc).__name__}: {exc})")
    print(("VERIFIED: " if result.ok else "FAILED: ") + result.message)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
