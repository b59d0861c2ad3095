"""What an engineer who deploys waiverdesk meets: moving a workspace from SQLite to
PostgreSQL with its audit trail still verifying, dumpdata and loaddata keeping the trail
verifiable, collectstatic, a migrate without warnings, and servers side by side."""

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from waiverdesk.testing import once_on_sqlite, postgres_only, serving

BIN = Path(sys.executable).parent
# The standalone verifier, as `waiverdesk audit verifier` hands it to an auditor.
VERIFIER = Path(__file__).parents[1] / "core/verifier.py"

# What a workspace holds besides the demo: a request with a file of evidence, an API token,
# an API retry's record, two signed checkpoints with a change between them.
FILLED = """
from django.contrib.auth.models import User
from waiverdesk import clock
from waiverdesk.api.models import IdempotencyRecord
from waiverdesk.api.services import create_token
from waiverdesk.audit import services as audit
from waiverdesk.testing import request_body
from waiverdesk.waivers import services
rita = User.objects.get(username="rita")
upload = services.Upload("usage_forecast", "forecast.csv", b"month,seats\\n2027-01,20\\n",
                         "text/csv")
body = request_body(type="seat_overage", scope={"seats": 20})
reference = services.create(body, rita, uploads=[upload]).reference
IdempotencyRecord.objects.create(user=rita, key="crm-4711", fingerprint="f" * 64,
                                 created_at=clock.now(), status_code=201, response="{}")
audit.checkpoint()
services.withdraw(reference, rita, "not needed")
audit.checkpoint()
print(reference, create_token(rita, "crm", ["read"])[1])
"""
# The moved workspace goes on: the token signs in, the file is there, new rows get new ids.
GOES_ON = """
from django.contrib.auth.models import User
from waiverdesk.api.services import authenticate
from waiverdesk.audit.services import public_key_hex, signing_key
from waiverdesk.testing import request_body
from waiverdesk.waivers import services
reference, token = "REFERENCE", "TOKEN"
waiver = services.get(reference)
print(waiver.status, [a.filename for a in waiver.attachments.all()], authenticate(token).user)
print(services.create(request_body(), User.objects.get(username="rita")).reference)
print(public_key_hex(signing_key()))
"""


class Workspace:
    def __init__(self, tmp_path: Path, database_url: str):
        self.env = {**os.environ, "WAIVERDESK_DATA_DIR": str(tmp_path),
                    "DATABASE_URL": database_url, "WAIVERDESK_DEVELOPMENT": "1"}  # fmt: skip

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([BIN / "waiverdesk", *args], env=self.env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert not check or done.returncode == 0, done.stderr[-3000:]
        return done


@pytest.fixture
def empty_postgres():
    url = os.environ["DATABASE_URL"]
    name = f"waiverdesk_moved_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


COUNTED = ("waivers_waiver", "waivers_attachment", "audit_entry", "audit_checkpoint",
           "api_apitoken", "api_idempotencyrecord", "auth_user",
           "notifications_message")  # fmt: skip


@postgres_only
def test_move_to_copies_a_workspace_into_postgresql_and_its_trail_verifies(
    tmp_path, empty_postgres
):
    source = Workspace(tmp_path, f"sqlite:///{tmp_path / 'waiverdesk.sqlite3'}")
    source.run("migrate", "-v0")
    source.run("demo")
    reference, token = source.run("shell", "--no-imports", "-c", FILLED).stdout.split()
    with sqlite3.connect(tmp_path / "waiverdesk.sqlite3") as db:
        before = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
    assert before["waivers_attachment"] == 1 and before["audit_checkpoint"] == 2

    moved = source.run("move-to", empty_postgres)
    assert "rows copied" in moved.stderr and "audit chain verifies" in moved.stderr
    assert "moved " in moved.stdout

    target = Workspace(tmp_path, empty_postgres)
    with psycopg.connect(empty_postgres) as db:
        after = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}
    assert after == before
    assert "audit chain verifies" in target.run("audit", "verify").stdout
    target.run("audit", "export", "-o", str(tmp_path / "trail.jsonl"), "--as", "adam")
    goes_on = GOES_ON.replace("REFERENCE", reference).replace("TOKEN", token)
    shown, made, key = target.run("shell", "--no-imports", "-c", goes_on).stdout.splitlines()
    checked = subprocess.run([sys.executable, VERIFIER, "trail", tmp_path / "trail.jsonl",
                              "--key", key], capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert shown == "withdrawn ['forecast.csv'] rita"
    assert made.startswith("WVR-") and made != reference

    again = source.run("move-to", empty_postgres, check=False)
    assert again.returncode != 0 and "holds data already" in again.stderr


@once_on_sqlite
def test_a_trail_dumped_and_loaded_with_django_still_verifies(tmp_path):
    source = Workspace(tmp_path, f"sqlite:///{tmp_path / 'source.sqlite3'}")
    source.run("migrate", "-v0")
    shutil.copy(tmp_path / "source.sqlite3", tmp_path / "migrated.sqlite3")
    source.run("demo")
    source.run("audit", "checkpoint")
    dump = tmp_path / "dump.json"
    source.run("dumpdata", "--natural-foreign", "--exclude", "contenttypes", "--exclude",
               "auth.permission", "-o", str(dump))  # fmt: skip
    assert ".123456" not in dump.read_text()  # sanity: what the serializer writes
    loaded = Workspace(tmp_path, f"sqlite:///{tmp_path / 'loaded.sqlite3'}")
    shutil.copy(tmp_path / "migrated.sqlite3", tmp_path / "loaded.sqlite3")  # as migrate makes it
    loaded.run("loaddata", str(dump))
    assert "audit chain verifies" in loaded.run("audit", "verify").stdout
    entries = [e for e in json.loads(dump.read_text()) if e["model"] == "audit.auditentry"]
    assert len(entries) > 50


@once_on_sqlite
def test_collectstatic_and_a_migrate_a_newcomer_need_not_worry_about(tmp_path):
    workspace = Workspace(tmp_path, f"sqlite:///{tmp_path / 'new.sqlite3'}")
    migrated = workspace.run("migrate")
    assert "WARNING" not in migrated.stdout + migrated.stderr
    workspace.env["WAIVERDESK_STATIC_ROOT"] = str(tmp_path / "public")
    workspace.run("collectstatic", "--noinput", "-v0")
    assert list((tmp_path / "public").rglob("*.css"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@once_on_sqlite
def test_two_servers_on_one_machine_each_have_their_own_control_socket(tmp_path):
    workspace = Workspace(tmp_path, f"sqlite:///{tmp_path / 'two.sqlite3'}")  # not migrated:
    one, two = free_port(), free_port()  # the servers start, and say they are not healthy
    expected = sorted([f"gunicorn-127.0.0.1-{one}.ctl", f"gunicorn-127.0.0.1-{two}.ctl"])
    with serving(workspace.env, one, workers=1), serving(workspace.env, two, workers=1):
        for _ in range(100):  # each server opens its socket as it starts its workers
            sockets = sorted(p.name for p in tmp_path.glob("gunicorn-*.ctl"))
            if sockets == expected:
                break
            time.sleep(0.1)
    assert sockets == expected
