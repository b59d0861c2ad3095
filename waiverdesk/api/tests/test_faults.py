"""Nothing lost or stuck under faults: every error under /api/ is JSON, a lost database is
503, and an Idempotency-Key's retry always completes, once."""

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from waiverdesk.api import idempotency
from waiverdesk.api import services as tokens
from waiverdesk.api.models import IdempotencyRecord
from waiverdesk.notifications import services as notify
from waiverdesk.testing import NOW, postgres_only, request_body, serving
from waiverdesk.waivers.models import Waiver


def call(url: str, token: str = "", body: dict | None = None, key: str = "", method: str = ""):
    """(status, content type, parsed body) of one HTTP request."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, headers, method=method or None)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        kind = error.headers["Content-Type"] or ""
        return error.code, kind, json.loads(raw) if kind.startswith("application/json") else raw


@pytest.fixture
def token(world):
    return tokens.create_token(world["rita"], "faults", ["read", "write"])[1]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/no-such-thing", 404),
        ("get", "/api/nothing", 404),
        ("post", "/api/v1/waivers/WVR-2027-00001/no-such-action", 404),
        ("delete", "/api/v1/waivers", 405),
        ("put", "/api/v1/customers", 405),
    ],
)
def test_every_error_under_the_api_is_json(token, method, path, status):
    response = getattr(Client(), method)(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["code"] == {404: "not_found", 405: "method_not_allowed"}[status]
    if status == 405:
        assert response["Allow"] and response["Allow"] in error["message"]


def test_a_web_page_that_does_not_exist_stays_a_page(world):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_database_that_cannot_be_reached_is_503_json_not_an_error_page(tmp_path):
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        unreachable = "postgres://postgres@127.0.0.1:9/test"  # nothing listens there
    else:
        unreachable = f"sqlite:///{tmp_path}/no-such-folder/waiverdesk.sqlite3"
    env = {**os.environ, "DATABASE_URL": unreachable, "WAIVERDESK_DATA_DIR": str(tmp_path)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serving(env, port, workers=1) as base:
        status, kind, body = call(f"{base}/api/v1/waivers", "wd_whatever")
        assert (status, kind) == (503, "application/json")
        assert body["errors"][0]["code"] == "unavailable"
        status, kind, body = call(f"{base}/api/v1/waivers", "wd_whatever", request_body(), key="k1")
        assert (status, body["errors"][0]["code"]) == (503, "unavailable")
        assert call(f"{base}/healthz")[::2] == (503, {"status": "unavailable"})
        # A signed-in person's page (its session is in the database).
        request = urllib.request.Request(
            f"{base}/requests/", headers={"Cookie": "sessionid=" + "s" * 32}
        )
        with pytest.raises(urllib.error.HTTPError) as page:
            urllib.request.urlopen(request, timeout=30)
        assert page.value.code == 503 and page.value.headers["Retry-After"]
        assert b"cannot reach its database" in page.value.read()


def test_healthz_tells_anonymous_callers_nothing_of_the_trail(world):
    assert Client().get("/healthz").json() == {"status": "ok"}


# -- Idempotency keys -------------------------------------------------------------------------


def test_a_key_whose_request_died_is_free_again_after_the_bound(token, settings):
    rita = User.objects.get(username="rita")
    IdempotencyRecord.objects.create(
        user=rita, key="k", fingerprint="x", created_at=timezone.now() - timedelta(hours=1)
    )  # the server died in the middle of its request: no answer was recorded
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="k")
    # Another body with the key is still "another request"...
    first = client.post("/api/v1/waivers", request_body(), content_type="application/json")
    assert first.status_code == 422
    # ...but one in progress for longer than the bound is abandoned: the same body runs.
    IdempotencyRecord.objects.all().delete()
    IdempotencyRecord.objects.create(user=rita, key="k", fingerprint=_fingerprint(request_body()),
                                     created_at=timezone.now() - timedelta(hours=1))  # fmt: skip
    settings.IDEMPOTENCY_ABANDONED_SECONDS = 60
    done = client.post("/api/v1/waivers", request_body(), content_type="application/json")
    assert done.status_code == 201
    replay = client.post("/api/v1/waivers", request_body(), content_type="application/json")
    assert replay["Idempotent-Replayed"] == "true" and Waiver.objects.count() == 1


def _fingerprint(body: dict) -> str:
    import hashlib

    raw = json.dumps(body).encode()
    return hashlib.sha256(b"POST /api/v1/waivers\n" + raw).hexdigest()


def test_a_key_expires_after_24_hours(token, settings):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="daily")
    assert (
        client.post("/api/v1/waivers", request_body(), content_type="application/json").status_code
        == 201
    )
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    other = request_body(scope={"seats": 7})
    assert client.post("/api/v1/waivers", other, content_type="application/json").status_code == 201
    assert Waiver.objects.count() == 2
    # The worker forgets expired keys.
    IdempotencyRecord.objects.update(created_at=NOW - timedelta(hours=25))
    assert idempotency.forget_expired(NOW) == [("idempotency keys", "forgot 1")]
    assert not IdempotencyRecord.objects.exists()


def test_a_request_that_fails_with_a_server_error_keeps_nothing_and_frees_its_key(
    token, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("the outbox is broken")

    monkeypatch.setattr(notify, "publish_many", broken)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="fails",
                    raise_request_exception=False)  # fmt: skip
    body = request_body(submit=True)
    assert client.post("/api/v1/waivers", body, content_type="application/json").status_code == 500
    assert not Waiver.objects.exists() and not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert client.post("/api/v1/waivers", body, content_type="application/json").status_code == 201
    assert Waiver.objects.count() == 1


@postgres_only
def test_keys_survive_backends_killed_mid_request_and_every_retry_completes_once(
    live_server, committed_world, settings
):
    settings.IDEMPOTENCY_ABANDONED_SECONDS = 2
    token = tokens.create_token(User.objects.get(username="rita"), "faults", ["write"])[1]
    url = f"{live_server.url}/api/v1/waivers"
    keys = [f"crm-{i}" for i in range(24)]
    bodies = {k: request_body(justification={**request_body()["justification"], "benefit": k})
              for k in keys}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_database()")
        mine, database = cursor.fetchone()
    stop = threading.Event()

    def kill_backends():
        db = settings.DATABASES["default"]
        with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=database,
                             autocommit=True) as killer:  # fmt: skip
            while not stop.is_set():
                killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid NOT IN (pg_backend_pid(), %s)", [database, mine],
                )  # fmt: skip
                time.sleep(0.003)

    killer = threading.Thread(target=kill_backends)
    killer.start()
    first = {}
    try:

        def send(k):
            first[k] = call(url, token, bodies[k], key=k)

        threads = [threading.Thread(target=send, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        killer.join()
    assert all(kind == "application/json" for _, kind, _ in first.values()), first
    assert {status for status, _, _ in first.values()} <= {201, 503}
    assert any(status == 503 for status, _, _ in first.values())  # the faults did happen

    deadline = time.monotonic() + 30
    final = {}
    for k in keys:
        while True:
            status, _, body = call(url, token, bodies[k], key=k)
            if status != 409 and status < 500:
                final[k] = (status, body)
                break
            assert time.monotonic() < deadline, f"{k} is still refused: {status} {body}"
            time.sleep(0.2)
    assert {status for status, _ in final.values()} == {201}
    for k in keys:  # one request each, whatever the faults did
        assert Waiver.objects.filter(justification__benefit=k).count() == 1
        assert final[k][1]["reference"] == Waiver.objects.get(justification__benefit=k).reference
