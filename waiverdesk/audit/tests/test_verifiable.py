"""An audit trail anyone can verify: signed Merkle checkpoints, an export and inclusion
proofs that the standalone verifier checks without the database, and every tampering with
them found. Reads of the trail are recorded in it."""

import json
import os
import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditCheckpoint, AuditEntry
from waiverdesk.core import verifier
from waiverdesk.testing import NOW, as_read, once_on_sqlite, request_body
from waiverdesk.waivers import services


@pytest.fixture
def demo_export(db, tmp_path):
    """The demo data's trail, exported by `waiverdesk audit export`; its lines."""
    call_command("demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    path = tmp_path / "trail.jsonl"
    call_command("audit", "export", "-o", str(path), stderr=open(os.devnull, "w"))  # noqa: SIM115
    return path


def rewrite(path: Path, change, layout=lambda checkpoints, entries: checkpoints + entries) -> Path:
    """A copy of the export with `change(checkpoints, entries)` done to its records (in
    place), written back in `layout`."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    checkpoints = [r for r in records if r["kind"] == "checkpoint"]
    entries = [r for r in records if r["kind"] == "entry"]
    change(checkpoints, entries)
    changed = path.with_name("tampered.jsonl")
    lines = [json.dumps(r) if isinstance(r, dict) else r for r in layout(checkpoints, entries)]
    changed.write_text("\n".join(lines) + "\n")
    return changed


def test_the_demo_trail_verifies_with_the_standalone_verifier(demo_export, standalone):
    key = audit.public_key_hex(audit.signing_key())
    code, said = standalone("trail", demo_export, "--key", key)
    entries = AuditEntry.objects.count()
    assert code == 0, said
    assert said.startswith(f"VERIFIED: {entries} entries verify") and key in said
    # Its checkpoints come first; the last covers all of it, the export's own read included.
    records = [json.loads(line) for line in demo_export.read_text().splitlines()]
    first_entry = next(i for i, r in enumerate(records) if r["kind"] == "entry")
    checkpoints = records[:first_entry]
    assert checkpoints and all(r["kind"] == "checkpoint" for r in checkpoints)
    assert checkpoints[-1]["size"] == entries == len(records) - first_entry


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_key_other_than_the_pinned_one_fails(demo_export, standalone):
    code, said = standalone("trail", demo_export, "--key", "ab" * 32)
    assert code == 1 and "not signed by the expected key" in said


def flip(text: str, at: int) -> str:
    return text[:at] + chr(ord(text[at]) ^ 1) + text[at + 1 :]


@once_on_sqlite  # the verifier reading a file: the engine made the file only
@pytest.mark.parametrize("position", [0.0, 0.3, 0.6, 0.99])
def test_one_changed_byte_anywhere_in_the_entries_is_found(demo_export, standalone, position):
    def change(_checkpoints, entries):
        entry = entries[int(position * (len(entries) - 1))]
        entry["canonical"] = flip(entry["canonical"], len(entry["canonical"]) // 2)

    code, said = standalone("trail", rewrite(demo_export, change))
    assert code == 1 and "does not hash to its recorded hash" in said, said


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_an_entry_rewritten_with_its_hash_recomputed_is_found(demo_export, standalone):
    def change(_checkpoints, entries):
        entry = entries[5]
        entry["canonical"] = entry["canonical"][:-1] + " ]"  # the same JSON, other bytes
        entry["hash"] = verifier.hashlib.sha256(entry["canonical"].encode()).hexdigest()

    code, said = standalone("trail", rewrite(demo_export, change))
    assert code == 1 and said.startswith("FAILED: entry 7"), said  # the next one's link


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_deleted_entry_is_found(demo_export, standalone):
    code, said = standalone("trail", rewrite(demo_export, lambda _c, entries: entries.pop(9)))
    assert code == 1 and "entry 10" in said, said


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_reordered_pair_is_found(demo_export, standalone):
    def change(_checkpoints, entries):
        entries[20], entries[21] = entries[21], entries[20]

    code, said = standalone("trail", rewrite(demo_export, change))
    assert code == 1 and "entry 21" in said, said


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_truncated_tail_is_found_against_the_checkpoint(demo_export, standalone):
    def change(_checkpoints, entries):
        del entries[-3:]

    code, said = standalone("trail", rewrite(demo_export, change))
    assert code == 1 and "the export holds" in said, said


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_malformed_file_or_a_checkpoint_among_the_entries_fails_with_a_reason(
    demo_export, standalone
):
    malformed = rewrite(demo_export, lambda *_: None, lambda c, e: [*c, *e, "{not json"])
    code, said = standalone("trail", malformed)
    assert code == 1 and said.startswith("FAILED: the file is malformed"), said
    moved = rewrite(demo_export, lambda *_: None, lambda c, e: [*e, *c])
    code, said = standalone("trail", moved)
    assert code == 1 and "a checkpoint stands among the entries" in said, said


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_changed_checkpoint_is_found(demo_export, standalone):
    def change(checkpoints, _entries):
        checkpoints[-1]["root"] = flip_bit(checkpoints[-1]["root"])

    code, said = standalone("trail", rewrite(demo_export, change))
    assert code == 1 and "not signed" in said, said


@once_on_sqlite  # the verifier reading a file: the engine made the file only
def test_a_checkpoint_signed_again_by_another_key_is_found_when_the_key_is_pinned(
    demo_export, standalone, settings, tmp_path
):
    pinned = audit.public_key_hex(audit.signing_key())
    settings.AUDIT_KEY_FILE = tmp_path / "mallory.pem"
    forged = audit.signing_key()

    def change(checkpoints, _entries):
        head = checkpoints[-1]
        head["public_key"] = audit.public_key_hex(forged)
        text = verifier.statement(head["size"], head["root"], head["head"], head["at"])
        head["signature"] = forged.sign(text).hex()

    tampered = rewrite(demo_export, change)
    assert standalone("trail", tampered)[0] == 0  # a valid signature, by some key
    code, said = standalone("trail", tampered, "--key", pinned)
    assert code == 1 and "not signed by the expected key" in said


def test_a_proof_of_a_waivers_entries_verifies_standalone(trail_with_proof, standalone):
    path, proof = trail_with_proof
    code, said = standalone("proof", path, "--key", proof["checkpoint"]["public_key"])
    assert code == 0, said
    assert f"{len(proof['entries'])} entries of {proof['reference']}" in said


@pytest.fixture
def trail_with_proof(world, tmp_path):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.create(request_body(submit=True), world["rita"], now=NOW)  # other entries
    services.decide(ref, world["mona"], "approve", "ok", now=NOW)
    path = tmp_path / "proof.json"
    call_command("audit", "prove", ref, "-o", str(path), "--as", "audrey")
    return path, json.loads(path.read_text())


def flip_bit(hex_text: str) -> str:
    raw = bytearray.fromhex(hex_text)
    raw[0] ^= 1
    return raw.hex()


def tampered_proofs(proof):
    entry = proof["entries"][0]
    path = entry["proof"]

    def variant(checkpoint=None, **changes):
        return {**proof, "checkpoint": {**proof["checkpoint"], **(checkpoint or {})},
                "entries": [{**entry, **changes}]}  # fmt: skip

    other_root = verifier.root([verifier.leaf_hash(b"x")]).hex()
    return {
        "a flipped bit in the path": variant(proof=[flip_bit(path[0]), *path[1:]]),
        "a path cut short": variant(proof=path[:-1]),
        "a path too long": variant(proof=[*path, path[0]]),
        "swapped path nodes": variant(proof=[path[1], path[0], *path[2:]]),
        "another entry": variant(seq=entry["seq"] + 1),
        "a changed entry": variant(canonical=entry["canonical"].replace("WVR-", "WVX-")),
        "a wrong tree size": variant(checkpoint={"size": proof["checkpoint"]["size"] + 1}),
        "a swapped root": variant(checkpoint={"root": other_root}),
    }


def test_tampered_proofs_are_rejected(trail_with_proof):
    _, proof = trail_with_proof
    assert verifier.verify_proof(proof).ok
    for what, bad in tampered_proofs(proof).items():
        assert not verifier.verify_proof(bad).ok, what


def test_checkpoints_extend_the_last_one_and_agree_with_the_whole_tree(world):
    for _ in range(3):
        services.create(request_body(submit=True), world["rita"], now=NOW)
        taken = audit.checkpoint()
        leaves = [verifier.leaf_hash(e.canonical.encode()) for e in AuditEntry.objects.all()]
        assert taken.seq == len(leaves)
        assert taken.root == verifier.root(leaves).hex()
        text = verifier.statement(taken.seq, taken.root, taken.hash, audit.timestamp(taken.at))
        audit.signing_key().public_key().verify(bytes.fromhex(taken.signature), text)
    assert audit.checkpoint() is None  # nothing new


def test_the_signing_key_is_made_once_readable_by_its_owner_only(db, settings):
    assert not settings.AUDIT_KEY_FILE.exists()
    first = audit.public_key_hex(audit.signing_key())
    assert stat.S_IMODE(settings.AUDIT_KEY_FILE.stat().st_mode) == 0o600
    assert audit.public_key_hex(audit.signing_key()) == first
    out = Path(settings.AUDIT_KEY_FILE).with_name("key.txt")
    call_command("audit", "key", stdout=out.open("w"))
    assert out.read_text().strip() == first


def test_a_configured_key_file_that_is_missing_is_an_error_not_a_new_key(db, settings, monkeypatch):
    monkeypatch.setenv("WAIVERDESK_AUDIT_KEY", str(settings.AUDIT_KEY_FILE))
    with pytest.raises(ImproperlyConfigured, match="does not exist"):
        audit.signing_key()
    assert not settings.AUDIT_KEY_FILE.exists()


def test_reads_of_the_trail_are_recorded_in_it(trail_with_proof, world, tmp_path):
    reads = AuditEntry.objects.filter(action="audit.read")
    assert [(as_read(e)[0], json.loads(e.payload)["what"]) for e in reads] == [("audrey", "proof")]
    raw = tokens.create_token(world["audrey"], "t", ["read"])[1]
    response = Client().get(
        "/api/v1/audit/entries?object_ref=trail", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 200
    assert [e["action"] for e in response.json()] == ["audit.read"]
    assert [(as_read(e)[0], json.loads(e.payload)["what"]) for e in reads.all()][-1] == (
        "audrey",
        "entries",
    )


def test_the_worker_takes_a_signed_checkpoint_when_the_chain_has_grown(world):
    from waiverdesk.worker import jobs

    services.create(request_body(submit=True), world["rita"], now=NOW)
    said = jobs.tick(NOW)
    latest = AuditCheckpoint.objects.last()
    assert latest.seq == AuditEntry.objects.count() and latest.signature
    assert f"audit checkpoint at {latest.seq}: root {latest.root}" in said
    assert not any("audit checkpoint" in line for line in jobs.tick(NOW))
