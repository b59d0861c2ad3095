"""The audit trail in the browser: for auditors and admins only, filtered, each entry with
its hash and the one it chains to, verification on demand, the export and a waiver's proof
as downloads; and every read recorded in the trail."""

import json

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.verifier import verify_proof, verify_trail
from waiverdesk.testing import NOW, client_for, request_body
from waiverdesk.waivers import services


def test_only_auditors_and_admins_open_the_trail(world):
    for name, status in (("audrey", 200), ("adam", 200), ("rita", 403), ("mona", 403),
                         ("olga", 403)):  # fmt: skip
        assert client_for(name).get("/audit/").status_code == status, name
        assert client_for(name).get("/audit/trail.jsonl").status_code == status, name
    assert 'href="/audit/"' in client_for("audrey").get("/requests/all/").content.decode()
    assert 'href="/audit/"' not in client_for("rita").get("/requests/").content.decode()


def test_entries_filter_by_waiver_actor_action_and_date_and_show_their_chain(world):
    first = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    second = services.create(request_body(), world["sam"], now=NOW).reference
    audrey = client_for("audrey")
    html = audrey.get("/audit/", {"waiver": first}).content.decode()
    assert first in html and f">{second}<" not in html
    entry = AuditEntry.objects.filter(object_ref=first).order_by("seq").first()
    assert entry.hash[:12] in html and entry.prev_hash[:12] in html
    assert f'href="?before={entry.seq}#e-{entry.seq - 1}"' in html
    by_sam = audrey.get("/audit/", {"actor": "sam", "action": "waiver.created"}).content.decode()
    assert second in by_sam and f">{first}<" not in by_sam
    assert "No entries match" in audrey.get("/audit/", {"until": "2000-01-01"}).content.decode()
    bad = audrey.get("/audit/", {"since": "yesterday"})
    assert bad.status_code == 422 and "From: give a date" in bad.content.decode()


def test_verification_the_export_and_a_proof_are_there_and_every_read_is_recorded(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    audit.checkpoint()
    audrey = client_for("audrey")
    reads = AuditEntry.objects.filter(action="audit.read").count()
    assert "Verified just now" in audrey.get("/audit/", {"verify": "1"}).content.decode()
    exported = b"".join(audrey.get("/audit/trail.jsonl").streaming_content).decode()
    lines = [json.loads(line) for line in exported.splitlines()]
    assert lines[0]["kind"] == "checkpoint" and any(e.get("kind") == "entry" for e in lines)
    assert verify_trail(exported.splitlines()).ok
    proof = json.loads(audrey.get(f"/audit/proofs/{ref}.json").content)
    assert proof["reference"] == ref and verify_proof(proof).ok
    assert audrey.get("/audit/proofs/WVR-1999-00001.json").status_code == 404
    assert AuditEntry.objects.filter(action="audit.read").count() == reads + 3
