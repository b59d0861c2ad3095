"""What one request costs the database: the statements of the API's busiest calls, counted,
so that a change that adds round trips to them is seen (the budgets are today's counts)."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from waiverdesk.api import services as tokens
from waiverdesk.testing import request_body

# The most each may take, on either engine (savepoints and the test's transaction aside).
BUDGET = {"create and submit": 25, "approve": 25, "read": 12, "list 50": 8}


def statements(work) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        answer = work()
    kept = [q for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT",
            "RELEASE SAVEPOINT"))]  # fmt: skip
    return len(kept), answer


@pytest.fixture
def call(world):
    client = Client()

    def call(name: str, path: str, body: dict | None = None):
        token = tokens.create_token(world[name], "t")[1]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        if body is None:
            return statements(lambda: client.get(path, **headers))
        sent = json.dumps(body)
        return statements(lambda: client.post(path, sent, "application/json", **headers))

    return call


def test_create_approve_read_and_list_stay_within_their_statements(call):
    for _ in range(3):  # a customer with some history
        call("rita", "/api/v1/waivers", request_body(submit=True))

    count, created = call("rita", "/api/v1/waivers", request_body(submit=True))
    assert created.status_code == 201 and count <= BUDGET["create and submit"], count
    ref = created.json()["reference"]
    # Answered from what it wrote, not read back: the same as what is stored.
    assert created.json() == call("rita", f"/api/v1/waivers/{ref}")[1].json()

    count, decided = call("mona", f"/api/v1/waivers/{ref}/decisions", {"decision": "approve"})
    assert decided.status_code == 201 and count <= BUDGET["approve"], count
    assert decided.json()["route"][0]["approvals"][0]["user"] == "mona"

    count, read = call("mona", f"/api/v1/waivers/{ref}")
    assert read.status_code == 200 and count <= BUDGET["read"], count
    assert read.json() == decided.json()

    count, listed = call("rita", "/api/v1/waivers?limit=50")
    assert listed.status_code == 200 and count <= BUDGET["list 50"], count
    assert listed.json()["count"] == 4
