"""Schemathesis against the project's own OpenAPI document, the API served for real."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from waiverdesk.testing import serving

BIN = Path(sys.executable).parent
SCRATCH_DB = "waiverdesk_conformance"


@pytest.fixture
def database_url(tmp_path):
    """A scratch database on the engine under test: a SQLite file, or a PostgreSQL database."""
    url = os.environ.get("DATABASE_URL", "")
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
            conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
        yield url.rsplit("/", 1)[0] + f"/{SCRATCH_DB}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    else:
        yield f"sqlite:///{tmp_path / 'api.sqlite3'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_served_api_honours_its_openapi_document(tmp_path, database_url):
    env = {**os.environ, "WAIVERDESK_DATA_DIR": str(tmp_path), "DATABASE_URL": database_url}

    def waiverdesk(*args: str) -> str:
        done = subprocess.run(
            [BIN / "waiverdesk", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.strip()

    waiverdesk("migrate", "-v0")
    waiverdesk("demo")
    token = waiverdesk(
        "token",
        "create",
        "adam",
        "--scope",
        "read",
        "--scope",
        "write",
        "--scope",
        "decide",
        "--scope",
        "admin",
    )
    port = free_port()
    with serving(env, port) as url:
        run = subprocess.run(
            [
                BIN / "schemathesis",
                "run",
                f"{url}/api/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                # Not status_code_conformance: gunicorn itself answers 414 to over-long URLs.
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--max-examples",
                "15",
                "--phases",
                "examples,fuzzing",
                "--seed",
                "7",
                "--max-time",
                "25",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[:3000]
        assert "17 passed" in run.stdout
