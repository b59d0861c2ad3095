"""The `waiverdesk` command: a licensing manager's whole day from the shell."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from waiverdesk.audit import triggers
from waiverdesk.testing import big_discount_body, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver

POLICY_FILE = str(settings.DEFAULT_POLICY_FILE)


def run(*args, stdin: str = "") -> str:
    out = io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command(*args, stdout=out)
    finally:
        sys.stdin = old_stdin
    return out.getvalue().strip()


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_policy_check_accepts_the_default_and_names_the_place_of_an_error(db, tmp_path):
    assert run("policy", "check", POLICY_FILE).startswith(f"{POLICY_FILE}: valid — 4 exception")
    data = yaml.safe_load(Path(POLICY_FILE).read_text())
    data["types"]["volume_discount"]["max_duration_days"] = 0
    broken = write(tmp_path, "broken.yaml", yaml.safe_dump(data))
    with pytest.raises(
        CommandError, match="types.volume_discount.max_duration_days: must be a positive integer"
    ):
        run("policy", "check", broken)


def test_publish_then_show_the_active_policy(db):
    run("user", "add", "paula", "--role", "policy_admin")
    assert run("policy", "publish", POLICY_FILE, "--as", "paula").startswith("published v1")
    assert run("policy", "show").startswith("v1 waiverdesk default exception policy")
    with pytest.raises(CommandError, match="identical to the active version v1"):
        run("policy", "publish", POLICY_FILE)


def test_a_new_version_needs_a_second_policy_admin_from_the_command_line(world, tmp_path):
    text = Path(POLICY_FILE).read_text().replace("sla_hours: 24", "sla_hours: 12")
    faster = write(tmp_path, "faster.yaml", text)
    said = run("policy", "publish", faster, "--as", "paula", "--note", "faster managers")
    assert said.startswith("proposed v2")
    assert "policy publish --approve 2 --as NAME" in said
    assert run("policy", "show").startswith("v1 ")
    with pytest.raises(CommandError, match="a second policy admin must approve it"):
        run("policy", "publish", "--approve", "2", "--as", "paula")
    with pytest.raises(CommandError, match="only admin or policy_admin may approve"):
        run("policy", "publish", "--approve", "2", "--as", "rita")
    with pytest.raises(CommandError, match="say who approves"):
        run("policy", "publish", "--approve", "2")
    assert run("policy", "publish", "--approve", "2", "--as", "adam").startswith("published v2")
    assert run("policy", "show").startswith("v2 ")
    with pytest.raises(CommandError, match="v2 is not a proposal"):
        run("policy", "publish", "--approve", "2", "--as", "adam")


def test_a_policy_with_a_misspelt_field_behind_or_is_refused_by_check_and_publish(world, tmp_path):
    text = (
        Path(POLICY_FILE)
        .read_text()
        .replace(
            "request.financials.concession_base >= 100000.0 || risk.financial >= 4",
            "risk.financial >= 4 || request.financials.concesion_base >= 100000.0",
        )
    )
    broken = write(tmp_path, "typo.yaml", text)
    expected = "tiers.2..when: column 43: request.financials has no field 'concesion_base'"
    for args in (("policy", "check", broken), ("policy", "publish", broken, "--as", "paula")):
        with pytest.raises(CommandError, match=expected):
            run(*args)
    assert run("policy", "show").startswith("v1 ")


def test_simulate_reads_a_request_from_standard_input_and_saves_nothing(world):
    result = json.loads(run("policy", "simulate", "-", stdin=json.dumps(big_discount_body())))
    assert result["eligible"] is True and result["policy_version"] == 1
    assert [s["tier"] for s in result["route"]][-1] == "executive"
    assert result["risk"]["overall"] == "critical"
    assert Waiver.objects.count() == 0


def test_user_add_refuses_an_unknown_role(world):
    with pytest.raises(CommandError, match="roles: no role named wizard"):
        run("user", "add", "zed", "--role", "wizard")


def test_user_password_lets_a_person_sign_in_and_refuses_a_weak_one(world):
    with pytest.raises(CommandError, match="password: This password is too short"):
        run("user", "password", "rita", stdin="short\n")
    assert run("user", "password", "rita", stdin="a long passphrase\n") == "rita may now sign in"
    assert User.objects.get(username="rita").check_password("a long passphrase")


def test_implementation_tasks_are_done_from_the_shell(world):
    ref = services.create(request_body(submit=True), world["rita"]).reference
    services.decide(ref, world["mona"], "approve")
    assert run("waiver", "task-done", ref, "update_billing", "--as", "ivan") == (
        f"{ref}: Bring billing in line with the authorized terms done"
    )
    with pytest.raises(CommandError, match="has no task 'paint_it'"):
        run("waiver", "task-done", ref, "paint_it", "--as", "ivan")
    with pytest.raises(CommandError, match="this task is for rita"):
        run("waiver", "task-done", ref, "notify_customer", "--as", "ivan")


def test_a_request_through_its_life_from_the_shell(world, tmp_path):
    body = request_body(start="2030-02-01", end="2030-03-15", submit=True)
    ref = run("waiver", "create", write(tmp_path, "r.json", body), "--as", "rita")
    assert ref.startswith("WVR-")
    with pytest.raises(CommandError, match=r"denied \[self_approval\]"):
        run("waiver", "approve", ref, "--as", "rita")
    assert (
        run(
            "waiver",
            "approve",
            ref,
            "--as",
            "mona",
            "--comment",
            "ok",
            "--condition",
            "Send usage report;olga;2030-03-01",
        )
        == f"{ref} approved"
    )
    detail = json.loads(run("waiver", "show", ref))
    assert {
        "reference",
        "status",
        "type",
        "policy_version",
        "risk",
        "route",
        "decision",
        "conditions",
        "timeline",
    } <= set(detail)
    assert detail["route"][0]["approvals"][0]["user"] == "mona"
    assert detail["conditions"][0]["owner"] == "olga"
    assert [e["action"] for e in detail["timeline"]] == [
        "waiver.created",
        "waiver.submitted",
        "waiver.refused",
        "waiver.decided",
    ]
    assert run("waiver", "terminate", ref, "--as", "olga", "--reason", "signed") == "terminated"
    assert run("audit", "verify").startswith("audit chain verifies:")


def test_bad_input_from_the_shell_names_every_field(world, tmp_path):
    path = write(tmp_path, "bad.json", request_body(customer="NOPE", end="yesterday"))
    with pytest.raises(CommandError) as caught:
        run("waiver", "create", path, "--as", "rita")
    assert "end: must be a date (YYYY-MM-DD) [invalid]" in str(caught.value)
    with pytest.raises(CommandError, match="no waiver WVR-2000-00001"):
        run("waiver", "submit", "WVR-2000-00001", "--as", "rita")


def test_audit_verify_fails_and_names_a_tampered_entry(world):
    from django.db import connection

    with connection.cursor() as cursor:
        triggers.uninstall(connection.vendor, cursor.execute)
        cursor.execute("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 5")
    with pytest.raises(CommandError, match="audit chain BROKEN at entry 5"):
        run("audit", "verify")


def test_the_demo_has_a_request_in_every_state(db):
    assert run("demo").startswith("demo data loaded: 13 requests")
    states = set(Waiver.objects.values_list("status", flat=True))
    assert states == {
        "draft",
        "submitted",
        "in_review",
        "changes_requested",
        "approved",
        "active",
        "rejected",
        "withdrawn",
        "expired",
        "terminated",
        "superseded",
    }
    assert run("demo") == "demo data is already loaded"
    assert run("audit", "verify").startswith("audit chain verifies:")


def test_the_demo_happened_before_now_whatever_the_hour(db, monkeypatch):
    from datetime import UTC, datetime

    from waiverdesk import clock
    from waiverdesk.audit.models import AuditEntry
    from waiverdesk.waivers.models import RouteStep

    early = datetime(2026, 12, 1, 6, 5, tzinfo=UTC)  # before the demo's 09:30 mornings
    monkeypatch.setattr(clock, "now", lambda: early)
    run("demo")
    assert not Waiver.objects.filter(created_at__gt=early).exists()
    assert not RouteStep.objects.filter(opened_at__gt=early).exists()
    assert not AuditEntry.objects.filter(at__gt=early).exists()


def test_the_console_script_sets_up_a_fresh_data_directory_and_erases_a_person_from_it(tmp_path):
    script = Path(sys.executable).parent / "waiverdesk"
    env = {**os.environ, "WAIVERDESK_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)  # the embedded default: a SQLite file in the data directory

    def run(*args: str) -> str:
        done = subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("migrate", "-v0")
    run("demo")
    assert (tmp_path / "waiverdesk.sqlite3").exists()
    # mona's name, as her identity provider would give it; the worker mails everyone (files
    # under the data directory) and signs a checkpoint.
    run("shell", "-c", "from django.contrib.auth.models import User; User.objects.filter("
        "username='mona').update(first_name='Mona', last_name='Quillfeather')")  # fmt: skip
    run("worker", "--once")
    hers = [b"mona@example.com", b"Quillfeather", b"Strategic account.",  # her comments:
            b"Attach the customer's renewal timeline.",
            b"Buy the seats; this is permanent demand."]  # fmt: skip

    def found() -> set[bytes]:
        files = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
        named = re.compile(rb"(?<![\w.@+-])mona(?![\w@-]|\.\w)")
        return {t for t in [*hers, b"mona"] for f in files
                if (named.search(f) if t == b"mona" else t in f)}  # fmt: skip

    assert found() == {*hers, b"mona"}  # the search finds what is there
    said = run("privacy", "erase", "mona", "--yes")  # on request
    assert said.startswith("erased mona: the trail and the records now say person-")
    assert found() == set()
    assert "audit chain verifies" in run("audit", "verify")
