"""Proofs that the trail only grew: a later signed checkpoint proved to extend an earlier
one (RFC 9162 consistency), by the command, the API and the standalone verifier; and
witnesses that cosign each checkpoint only when it extends the last one they cosigned."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit import services as audit
from waiverdesk.audit import witnesses
from waiverdesk.audit.models import AuditEntry, WitnessCosignature
from waiverdesk.core import verifier
from waiverdesk.testing import NOW, as_read, client_for, request_body
from waiverdesk.waivers import services
from waiverdesk.worker import jobs


def grow(world, requests: int = 1) -> int:
    """The trail grown by `requests` requests and signed; its size."""
    for _ in range(requests):
        services.create(request_body(submit=True), world["rita"], now=NOW)
    return audit.checkpoint().seq


@pytest.fixture
def two_checkpoints(world):
    old = grow(world)
    new = grow(world, 3)
    return old, new


def test_the_command_proves_the_latest_checkpoint_extends_an_earlier_one(
    two_checkpoints, standalone, tmp_path
):
    old, new = two_checkpoints
    path = tmp_path / "proof.json"
    call_command("audit", "consistency", str(old), "-o", str(path), "--as", "audrey")
    document = json.loads(path.read_text())
    assert (document["old"]["size"], document["new"]["size"]) == (old, new)
    key = audit.public_key_hex(audit.signing_key())
    code, said = standalone("consistency", path, "--key", key)
    assert code == 0, said
    assert f"the tree of {new} entries" in said and f"extends the tree of {old} " in said
    read = AuditEntry.objects.filter(action="audit.read").last()
    assert as_read(read) == ("audrey", {"what": "consistency",
                                                                 "from": old})  # fmt: skip
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    assert standalone("consistency", path, "--key", other)[0] == 1


def test_a_size_with_no_signed_checkpoint_is_refused_in_words(two_checkpoints):
    with pytest.raises(CommandError, match=r"no signed checkpoint of 2 entries; the latest are"):
        call_command("audit", "consistency", "2")


def test_the_api_gives_the_same_proof_to_auditors_only(two_checkpoints, world):
    old, _ = two_checkpoints
    raw = tokens.create_token(world["audrey"], "t", ["read"])[1]
    auditor = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    found = auditor.get(f"/api/v1/audit/consistency?from={old}")
    assert found.status_code == 200
    assert verifier.verify_consistency_proof(found.json(), audit.public_key_hex(
        audit.signing_key())).ok  # fmt: skip
    for bad in ("0", "-1", "abc", "2", ""):
        answer = auditor.get(f"/api/v1/audit/consistency?from={bad}")
        assert answer.status_code == 422, bad
        assert "from" in answer.content.decode()
    raw = tokens.create_token(world["rita"], "t", ["read"])[1]
    requester = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert requester.get(f"/api/v1/audit/consistency?from={old}").status_code == 403


def test_a_rewritten_history_signed_again_does_not_prove_consistent(two_checkpoints):
    """The operator holds the signing key: it can sign a checkpoint over a trail whose old
    entry it changed, and a proof from that trail; the auditor's earlier checkpoint does
    not accept it."""
    old, _ = two_checkpoints
    genuine = audit.consistency(old)
    texts = list(AuditEntry.objects.values_list("canonical", flat=True))
    texts[1] = texts[1].replace(",", ", ", 1)  # one byte more in entry 2
    forked = verifier.Tree([verifier.leaf_hash(t.encode()) for t in texts])
    root = forked.root().hex()
    new = {**genuine["new"], "root": root}
    statement = verifier.statement(new["size"], root, new["head"], new["at"])
    new["signature"] = audit.signing_key().sign(statement).hex()
    assert verifier.signature_ok(new)
    rewritten = {**genuine, "new": new, "proof": [h.hex() for h in forked.consistency(old)]}
    assert verifier.verify_consistency_proof(genuine).ok
    result = verifier.verify_consistency_proof(rewritten)
    assert not result.ok and f"does not extend the tree of {old}" in result.message


class Witness:
    """A witness of the tests' own: it keeps the last checkpoint it cosigned, and cosigns a
    new one only when the log's signature and the consistency proof from it verify."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        self.public_key = self.key.public_key().public_bytes_raw().hex()
        self.last: dict | None = None
        self.log_key = ""
        self.trouble: tuple[int, dict] | None = None  # answered instead, when set
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = witness.answer(sent)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cosign"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, sent: dict) -> tuple[int, dict]:
        if self.trouble:
            return self.trouble
        new = sent["new"]
        self.log_key = self.log_key or sent["log"]  # trusted on first use
        if not verifier.signature_ok(new, self.log_key):
            return 403, {"error": "the checkpoint is not signed by the log's key"}
        if self.last is not None:
            old, proof = self.last, [bytes.fromhex(h) for h in sent["proof"]]
            if not verifier.verify_consistency(
                old["size"], new["size"], bytes.fromhex(old["root"]), bytes.fromhex(new["root"]),
                proof,
            ):  # fmt: skip
                return 409, {"error": f"it does not extend the tree of {old['size']} I cosigned"}
        self.last = new
        signature = self.key.sign(verifier.cosigned(new)).hex()
        return 200, {"public_key": self.public_key, "signature": signature}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness(settings):
    found = Witness()
    settings.AUDIT_WITNESSES = {"notary": found.url}
    yield found
    found.stop()


def test_the_worker_has_each_checkpoint_cosigned_and_the_export_carries_them(
    world, witness, standalone, tmp_path
):
    services.create(request_body(submit=True), world["rita"], now=NOW)
    first = jobs.tick(NOW)
    assert any(line.startswith("witness notary: cosigned the checkpoint at") for line in first)
    services.create(request_body(submit=True), world["rita"], now=NOW)
    second = jobs.tick(NOW)  # the witness checks the proof from the first checkpoint
    assert any(line.startswith("witness notary: cosigned") for line in second)
    assert not any("witness" in line for line in jobs.tick(NOW))  # nothing new to cosign
    assert WitnessCosignature.objects.filter(refused="").count() == 2
    path = tmp_path / "trail.jsonl"
    audit.checkpoint()  # as `audit export` does, so the witness must answer again
    witnesses.send(NOW)
    with path.open("w") as out:
        audit.export(out)
    code, said = standalone("trail", path, "--witness-key", witness.public_key)
    assert code == 0 and "cosigned by 1 witness" in said, said
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    code, said = standalone("trail", path, "--witness-key", stranger)
    assert code == 1 and "is not cosigned by the witness" in said
    proof = tmp_path / "proof.json"
    first_size = WitnessCosignature.objects.order_by("checkpoint_id").first().checkpoint_id
    call_command("audit", "consistency", str(first_size), "-o", str(proof))
    assert standalone("consistency", proof, "--witness-key", witness.public_key)[0] == 0


def test_a_witness_that_sees_a_checkpoint_not_extending_its_last_refuses_and_it_is_said(
    world, witness, caplog
):
    services.create(request_body(submit=True), world["rita"], now=NOW)
    jobs.tick(NOW)
    # The witness last cosigned a tree of the same size with another root: a fork.
    witness.last = {**witness.last, "root": verifier.root([verifier.leaf_hash(b"x")]).hex()}
    services.create(request_body(submit=True), world["rita"], now=NOW)
    said = jobs.tick(NOW)
    refusal = [line for line in said if line.startswith("witness notary: REFUSED")]
    assert refusal and "does not extend the tree of" in refusal[0]
    assert any(r.levelname == "ERROR" and "REFUSED" in r.getMessage() for r in caplog.records)
    stored = WitnessCosignature.objects.exclude(refused="").get()
    assert "does not extend" in stored.refused and stored.signature == ""
    assert not any("witness" in line for line in jobs.tick(NOW))  # said once for it


def test_the_trail_page_downloads_the_proof_and_shows_the_witnesses_answers(
    two_checkpoints, witness
):
    old, new = two_checkpoints
    witnesses.send(NOW)
    audrey = client_for("audrey")
    page = audrey.get("/audit/").content.decode()
    assert "Witness notary" in page and "Cosigned with" in page
    download = audrey.get("/audit/", {"from": str(old)})
    document = json.loads(download.content)
    assert verifier.verify_consistency_proof(document).ok
    assert document["new"]["size"] > new  # the page's reads are in the trail, and signed
    name = f"consistency-{old}-{document['new']['size']}.json"
    assert download["Content-Disposition"] == f'attachment; filename="{name}"'
    for bad, said in (
        ("2", "no signed checkpoint of 2 entries"),
        ("two", "give its size, a number of entries"),
    ):
        answer = audrey.get("/audit/", {"from": bad})
        assert answer.status_code == 422
        assert f"Earlier checkpoint: {said}" in answer.content.decode()
    assert client_for("rita").get("/audit/", {"from": str(old)}).status_code == 403


def test_witnesses_are_configured_as_name_and_address_or_refused_at_start():
    from django.core.exceptions import ImproperlyConfigured

    from waiverdesk import settings as configuration

    assert configuration.witnesses(" notary=https://w.example/cosign, b=http://10.0.0.5:8080 ") == {
        "notary": "https://w.example/cosign",
        "b": "http://10.0.0.5:8080",
    }
    assert configuration.witnesses("") == {}
    for bad in ("https://w.example", "notary=", "notary=ftp://w.example", "=https://w.example"):
        with pytest.raises(ImproperlyConfigured, match="is not name=https://address"):
            configuration.witnesses(bad)


def test_a_witness_out_of_reach_is_asked_again_at_the_next_tick(world, witness, settings):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/cosign"  # nobody listens there
    settings.AUDIT_WITNESSES = {"notary": closed}
    services.create(request_body(submit=True), world["rita"], now=NOW)
    assert not any("witness" in line for line in jobs.tick(NOW))
    assert not WitnessCosignature.objects.exists()
    settings.AUDIT_WITNESSES = {"notary": witness.url}
    assert any(line.startswith("witness notary: cosigned") for line in jobs.tick(NOW))


def test_a_witness_in_trouble_is_asked_again_and_a_bad_cosignature_is_a_refusal(world, witness):
    services.create(request_body(submit=True), world["rita"], now=NOW)
    witness.trouble = (503, {"error": "down for maintenance"})
    assert not any("witness" in line for line in jobs.tick(NOW))
    assert not WitnessCosignature.objects.exists()
    witness.trouble = (200, {"public_key": 7, "signature": ["not", "hex"]})
    said = [line for line in jobs.tick(NOW) if "witness" in line]
    assert said == [f"witness notary: REFUSED the checkpoint at "
                    f"{WitnessCosignature.objects.get().checkpoint_id}: "
                    "its cosignature does not verify"]  # fmt: skip


def test_proofs_built_from_the_stored_frontiers_verify_between_any_two_checkpoints(db):
    from django.db import transaction

    from waiverdesk.audit.models import AuditCheckpoint

    for n in range(1, 40):
        with transaction.atomic():
            audit.append("tester", "test.entry", payload={"n": n}, object_type="t", object_ref="1")
        if n in (1, 2, 3, 4, 6, 7, 8, 13, 16, 21, 32, 39):
            audit.checkpoint()
    signed = {c.seq: c for c in AuditCheckpoint.objects.all()}
    for old in signed:
        for new in (n for n in signed if n >= old):
            proof = audit.consistency_proof(old, new)
            heads = bytes.fromhex(signed[old].root), bytes.fromhex(signed[new].root)
            assert verifier.verify_consistency(old, new, *heads, proof), (old, new)
