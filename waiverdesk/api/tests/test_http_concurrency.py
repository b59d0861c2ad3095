"""Concurrent clients through the HTTP layer, on PostgreSQL, against a live server."""

import json
import urllib.error
import urllib.request
from collections import Counter

from django.contrib.auth.models import User

from waiverdesk.api import services as tokens
from waiverdesk.directory import services as directory
from waiverdesk.testing import at_once, postgres_only, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Approval, Waiver

pytestmark = [postgres_only]


def post(url: str, token: str, body: dict, key: str = "") -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_twenty_concurrent_approvals_over_http_record_one(live_server, committed_world):
    rita = User.objects.get(username="rita")
    ref = services.create(request_body(submit=True), rita).reference
    raws = [
        tokens.create_token(directory.add_user(f"manager{i}", ["sales_manager"]), "t")[1]
        for i in range(20)
    ]
    url = f"{live_server.url}/api/v1/waivers/{ref}/decisions"

    results = at_once(20, lambda i: post(url, raws[i], {"decision": "approve"}))

    codes = Counter(status for status, _ in results)
    assert codes == {201: 1, 409: 19}, results
    assert Approval.objects.filter(waiver__reference=ref).count() == 1


def test_twenty_concurrent_posts_with_one_key_create_one_request(live_server, committed_world):
    raw = tokens.create_token(User.objects.get(username="rita"), "t")[1]
    url = f"{live_server.url}/api/v1/waivers"

    results = at_once(20, lambda i: post(url, raw, request_body(), key="crm-ticket-7"))

    assert Waiver.objects.count() == 1
    created = {body["reference"] for status, body in results if status == 201}
    assert created == {Waiver.objects.get().reference}
    assert {status for status, _ in results} <= {201, 409}
