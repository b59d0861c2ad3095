"""Shared test set-up: the default policy, named people, customers and products.

The people, as in every test: rita requests, mona and mark are sales managers
(mark also owns the ACME account), dana is deal desk, fiona and felix are
finance, leo is legal, eva and edgar are executives, olga is a control owner,
adam is an admin, and charlie has no role at all.
"""

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db.backends.signals import connection_created

from waiverdesk.core import verifier
from waiverdesk.directory import services as directory
from waiverdesk.policies import services as policies
from waiverdesk.testing import NOW, PEOPLE, serving


def _may_empty_the_audit_tables(sender, connection, **kwargs):
    """Between transactional tests the database is emptied with TRUNCATE, which the audit
    tables refuse unless a superuser says so (audit/triggers.py). A test's commit need not
    wait for the disk (what others see of it is the same)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET waiverdesk.emptying_audit = 'on'")
            cursor.execute("SET synchronous_commit TO off")


connection_created.connect(_may_empty_the_audit_tables)


@pytest.fixture(autouse=True)
def _files_in_tmp(settings, tmp_path):
    settings.ATTACHMENT_DIR = tmp_path / "attachments"
    settings.AUDIT_KEY_FILE = tmp_path / "audit-signing-key.pem"


@pytest.fixture
def world(db):
    """The default policy published, the people above, and some customers and products."""
    policies.publish(settings.DEFAULT_POLICY_FILE.read_text(), note="default")
    people = directory.add_users(PEOPLE)
    directory.add_product("DB-ENT", "Database Enterprise", "Database", "high")
    directory.add_product("AN-EDGE", "Analytics Edge", "Analytics", "low")
    directory.add_product("SEC-GW", "Secure Gateway", "Security", "high")
    directory.add_product("COL-SUITE", "Collaboration Suite", "Collaboration", "low")
    directory.add_customer("ACME-001", "Acme", "EMEA", account_owner="mark")
    directory.add_customer("GLOBEX-002", "Globex", "AMER")
    return people


@pytest.fixture
def mail_and_a_fixed_clock(world, settings):
    """Everyone in the world has an address (name@example.com), and the workspace's clock
    reads the day of NOW (a sandbox's), for what reads the time itself (inboxes, links)."""
    from waiverdesk.worker import clock

    for name, user in world.items():
        user.email = f"{name}@example.com"
        user.save(update_fields=["email"])
    settings.SANDBOX = True
    clock.set_to(NOW.date())


@pytest.fixture
def committed_world(transactional_db):
    """The world, committed, for tests where other threads or a live server must see it."""
    policies.publish(settings.DEFAULT_POLICY_FILE.read_text())
    directory.add_users(PEOPLE)
    directory.add_product("AN-EDGE", "Analytics Edge", "Analytics", "low")
    directory.add_customer("GLOBEX-002", "Globex", "AMER")


class Served:
    """`waiverdesk serve` on a scratch database of the engine under test, with the demo data."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def waiverdesk(self, *args: str) -> str:
        """Run a `waiverdesk` command against the served database; its standard output."""
        done = subprocess.run(
            [Path(sys.executable).parent / "waiverdesk", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.strip()


_SERVED = itertools.count()


@contextlib.contextmanager
def serve_demo(tmp_path: Path):
    """The app served for real (the demo loaded) on a scratch SQLite file or PostgreSQL
    database; yields (Served, base URL)."""
    url = os.environ.get("DATABASE_URL", "")
    scratch = f"waiverdesk_served_{os.getpid()}_{next(_SERVED)}"  # one at a time each
    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if postgres:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {scratch}")
        database_url = url.rsplit("/", 1)[0] + f"/{scratch}"
    else:
        database_url = f"sqlite:///{tmp_path / 'served.sqlite3'}"
    # Development mode: the demo's people keep the demo password (see `waiverdesk demo`).
    # The server and the commands share one secret key, as a deployment's processes do: it
    # signs the decision links a command's emails carry.
    app = Served({**os.environ, "WAIVERDESK_DATA_DIR": str(tmp_path), "DATABASE_URL": database_url,
                  "WAIVERDESK_DEVELOPMENT": "1",
                  "WAIVERDESK_SECRET_KEY": "a-test-key-" + "x" * 50})  # fmt: skip
    app.waiverdesk("migrate", "-v0")
    app.waiverdesk("demo")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        with serving(app.env, port) as base:
            yield app, base
    finally:
        if postgres:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")


@pytest.fixture
def served(tmp_path):
    """The demo served for one test: (Served, base URL)."""
    with serve_demo(tmp_path) as found:
        yield found


@pytest.fixture(scope="session")
def served_shared(tmp_path_factory):
    """One demo served for the browser tests, which each make their own requests."""
    with serve_demo(tmp_path_factory.mktemp("served")) as found:
        yield found


@pytest.fixture
def trusted_mail_server(settings):
    """Email intake believes the Authentication-Results of mx.example.com (see
    waivers/tests/test_email_intake.email)."""
    settings.EMAIL_TRUSTED_AUTHSERV = {"mx.example.com"}
    return "mx.example.com"


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on a free port; yields the list of messages it receives."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    received = []

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            received.append(message_from_bytes(envelope.content))
            return "250 kept"

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_SSL = False
    yield received
    controller.stop()


@pytest.fixture
def webhook_receiver(settings):
    """A real HTTP endpoint that verifies Standard Webhooks signatures with the
    `standardwebhooks` package. Set `.fail_first` or `.answer` to make it misbehave."""
    from waiverdesk.testing import WebhookReceiver

    settings.ALLOW_PRIVATE_WEBHOOKS = True
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def standalone(tmp_path):
    """The verifier copied out of the project and run in isolated mode: it cannot import
    waiverdesk, only the standard library and `cryptography`."""
    copy = tmp_path / "auditor" / "verifier.py"
    copy.parent.mkdir()
    shutil.copy(verifier.__file__, copy)

    def run(what: str, path: Path, *extra: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-I", str(copy), what, str(path), *extra],
            capture_output=True,
            text=True,
            cwd=copy.parent,
            timeout=60,
        )
        return done.returncode, done.stdout.strip()

    return run
