"""The JSON API as an integration (a CRM, a ticketing system, a script) uses it."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from waiverdesk import clock
from waiverdesk.api import services as tokens
from waiverdesk.api.models import ApiToken, IdempotencyRecord
from waiverdesk.audit.models import AuditEntry
from waiverdesk.testing import NOW, big_discount_body, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver

SPEC_BODY = {  # SPEC §7, as written
    "type": "temporary_access",
    "customer": "ACME-001",
    "products": ["DB-ENT"],
    "license_type": "subscription",
    "region": "EMEA",
    "start": "2027-01-01",
    "end": "2027-03-31",
    "scope": {"seats": 50},
    "financials": {"currency": "EUR", "list_value": 120000, "concession": 30000},
    "justification": {
        "benefit": "…",
        "alternatives": "…",
        "customer_impact": "…",
        "why_not_standard": "…",
    },
    "control_owner": "olga",
    "submit": True,
}


class Api:
    """A client that sends one person's token."""

    def __init__(self, raw: str | None):
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else {}

    def get(self, path, **params):
        return self.client.get(path, params, **self.headers)

    def post(self, path, body=None, **headers):
        return self.client.post(
            path, json.dumps(body or {}), content_type="application/json", **self.headers, **headers
        )


@pytest.fixture
def as_(world):
    return lambda name, scopes=None: Api(tokens.create_token(world[name], "t", scopes)[1])


def test_the_canonical_body_creates_and_submits_a_request(as_):
    response = as_("rita").post("/api/v1/waivers", SPEC_BODY)
    assert response.status_code == 422  # outcomes are needed before submission (A1)
    assert response.json() == {
        "errors": [
            {
                "field": "outcomes",
                "code": "required",
                "message": "name at least one measurable outcome (a KPI)",
            }
        ]
    }
    body = {
        **SPEC_BODY,
        "start": clock.now().date().isoformat(),
        "end": (clock.now().date() + timedelta(days=80)).isoformat(),
        "outcomes": [{"metric": "seats in use", "target": 45}],
    }
    response = as_("rita").post("/api/v1/waivers", body)
    assert response.status_code == 201, response.content
    waiver = response.json()
    assert waiver["reference"].startswith("WVR-") and waiver["status"] == "submitted"
    assert waiver["policy_version"] == 1
    assert set(waiver["risk"]) == {
        "financial",
        "operational",
        "reputational",
        "compliance",
        "overall",
    }
    step = waiver["route"][0]
    assert {k: step[k] for k in ("tier", "role", "required", "status", "approvals")} == {
        "tier": "manager",
        "role": "sales_manager",
        "required": 1,
        "status": "pending",
        "approvals": [],
    }
    assert [e["action"] for e in waiver["timeline"]] == ["waiver.created", "waiver.submitted"]


def test_errors_name_every_field_and_nothing_is_stored(as_):
    api = as_("rita")
    bad = request_body(end="2027-13-01", products=[], scope={"seats": "many"})
    response = api.post("/api/v1/waivers", bad)
    assert response.status_code == 422
    fields = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert fields == {("products", "invalid"), ("end", "invalid"), ("scope.seats", "invalid")}
    response = api.post("/api/v1/waivers", request_body(end="2027-12-31", submit=True))
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "after_max_duration"
    malformed = api.client.post(
        "/api/v1/waivers", "{not json", content_type="application/json", **api.headers
    )
    assert malformed.status_code == 400
    assert api.post("/api/v1/waivers", {"note": "a\u0000b"}).status_code == 400
    assert Waiver.objects.count() == 0


def test_a_decision_with_conditions_and_a_refused_one_audited(as_, world):
    ref = services.create(request_body(submit=True), world["rita"]).reference
    refused = as_("rita").post(f"/api/v1/waivers/{ref}/decisions", {"decision": "approve"})
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "self_approval"
    assert AuditEntry.objects.filter(object_ref=ref, action="waiver.refused").count() == 1
    due = (clock.now().date() + timedelta(days=30)).isoformat()
    decided = as_("mona").post(
        f"/api/v1/waivers/{ref}/decisions",
        {
            "decision": "approve",
            "comment": "ok",
            "conditions": [{"text": "Send usage report", "owner": "olga", "due": due}],
        },
    )
    assert decided.status_code == 201
    waiver = decided.json()
    assert waiver["status"] == "approved" and waiver["decision"]["approvers"] == ["mona"]
    assert waiver["conditions"] == [
        {
            "text": "Send usage report",
            "owner": "olga",
            "due": due,
            "status": "open",
            "customer_visible": False,
        }
    ]
    again = as_("mark").post(f"/api/v1/waivers/{ref}/decisions", {"decision": "approve"})
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "invalid_state"


def test_lists_filter_and_paginate_what_the_caller_may_see(as_, world):
    small = [services.create(request_body(submit=True), world["rita"]).reference for _ in range(3)]
    big = services.create(big_discount_body(submit=True), world["sam"]).reference
    rita, mona, dana = as_("rita"), as_("mona"), as_("dana")
    assert rita.get("/api/v1/waivers").json()["count"] == 3
    page = rita.get("/api/v1/waivers", limit=2, offset=2).json()
    assert (page["count"], [i["reference"] for i in page["items"]]) == (3, [small[0]])
    assert mona.get("/api/v1/waivers", pending_for_me=True).json()["count"] == 4
    assert dana.get("/api/v1/waivers").json()["count"] == 1  # only the big one has deal desk
    assert dana.get("/api/v1/waivers", pending_for_me=True).json()["count"] == 0
    audrey = as_("audrey")
    assert [
        i["reference"]
        for i in audrey.get(
            "/api/v1/waivers",
            type="volume_discount",
            customer="ACME-001",
            product="DB-ENT",
            requester="sam",
        ).json()["items"]
    ] == [big]
    assert audrey.get("/api/v1/waivers", expiring_before="2027-03-16").json()["count"] == 3
    assert audrey.get("/api/v1/waivers", status="approved").json()["count"] == 0
    assert audrey.get("/api/v1/waivers", limit=500).status_code == 422


def test_renewal_amendment_withdraw_and_terminate(as_, world):
    ref = services.create(request_body(submit=True), world["rita"]).reference
    services.decide(ref, world["mona"], "approve")
    rita = as_("rita")
    renewal = rita.post(
        f"/api/v1/waivers/{ref}/renewals",
        {
            "end": "2027-05-31",
            "justification": {
                "benefit": "slipped",
                "customer_impact": "c",
                "why_not_standard": "w",
            },
        },
    )
    assert renewal.status_code == 201 and renewal.json()["predecessor"] == ref
    amendment = rita.post(f"/api/v1/waivers/{ref}/amendments", {"scope": {"seats": 60}})
    assert amendment.status_code == 201 and amendment.json()["kind"] == "amendment"
    assert (
        rita.post(
            f"/api/v1/waivers/{renewal.json()['reference']}/withdraw", {"reason": "not needed"}
        ).json()["status"]
        == "withdrawn"
    )
    ended = as_("olga").post(f"/api/v1/waivers/{ref}/terminate", {"reason": "signed"})
    assert ended.status_code == 200 and ended.json()["status"] == "terminated"


def test_policy_simulate_reference_data_webhooks_and_verify(as_):
    rita, adam = as_("rita"), as_("adam", ["read", "write", "admin"])
    policy = rita.get("/api/v1/policy").json()
    assert policy["version"] == 1
    assert {t["name"] for t in policy["types"]} == {
        "volume_discount",
        "temporary_access",
        "term_extension",
        "seat_overage",
    }
    result = rita.post("/api/v1/simulate", big_discount_body()).json()
    assert result["eligible"] and result["route"][-1]["tier"] == "executive"
    assert Waiver.objects.count() == 0
    new = {"external_id": "NEW-1", "name": "New", "account_owner": "mark"}
    assert adam.post("/api/v1/customers", new).status_code == 201
    assert {**new, "region": "", "contact_email": ""} in rita.get("/api/v1/customers").json()
    bad = adam.post("/api/v1/customers", {**new, "contact_email": "not-an-address"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "contact_email"
    assert (
        adam.post(
            "/api/v1/products",
            {"code": "X-1", "name": "X", "family": "Analytics", "risk_class": "extreme"},
        ).status_code
        == 422
    )
    hook = adam.post(
        "/api/v1/webhooks", {"url": "https://93.184.215.14/hooks", "events": ["waiver.decided"]}
    )
    assert hook.status_code == 201 and hook.json()["secret"].startswith("whsec_")
    assert hook.json()["secret"] not in "".join(
        AuditEntry.objects.values_list("payload", flat=True)
    )
    assert adam.post("/api/v1/webhooks", {"url": "ftp://x"}).json()["errors"][0]["field"] == "url"
    verified = as_("audrey").get("/api/v1/audit/verify").json()
    assert verified["ok"] and verified["length"] == AuditEntry.objects.count()


def test_the_openapi_document_is_served_where_clients_look(db):
    document = Client().get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert {
        "/api/v1/waivers",
        "/api/v1/waivers/{reference}/decisions",
        "/api/v1/simulate",
        "/api/v1/audit/verify",
    } <= set(document["paths"])


# -- tokens ---------------------------------------------------------------------


def test_a_token_works_until_the_instant_it_expires(world):
    token, raw = tokens.create_token(
        world["rita"], "t", expires_at=NOW + timedelta(hours=1), now=NOW
    )
    just_before = NOW + timedelta(hours=1) - timedelta(microseconds=1)
    assert tokens.authenticate(raw, now=just_before) == token
    assert tokens.authenticate(raw, now=NOW + timedelta(hours=1)) is None


def test_revoking_a_token_or_deactivating_its_user_takes_effect_on_the_next_request(as_, world):
    token, raw = tokens.create_token(world["rita"], "t")
    api = Api(raw)
    assert api.get("/api/v1/policy").status_code == 200
    tokens.revoke(token, "adam")
    assert api.get("/api/v1/policy").status_code == 401
    other = Api(tokens.create_token(world["sam"], "t")[1])
    assert other.get("/api/v1/policy").status_code == 200
    world["sam"].is_active = False
    world["sam"].save()
    assert other.get("/api/v1/policy").status_code == 401


def test_the_database_holds_no_token_only_its_hash(world):
    out = io.StringIO()
    call_command("token", "create", "rita", "--scope", "read", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("wd_") and len(raw) >= 3 + 43  # 256 bits, URL-safe base64
    assert Api(raw).get("/api/v1/policy").status_code == 200
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            assert raw not in repr(cursor.fetchall()), table
    assert ApiToken.objects.get().digest == tokens.digest(raw)


# -- idempotency ------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_first_response(as_):
    api = as_("rita")
    first = api.post("/api/v1/waivers", request_body(), HTTP_IDEMPOTENCY_KEY="crm-42")
    again = api.post("/api/v1/waivers", request_body(), HTTP_IDEMPOTENCY_KEY="crm-42")
    assert first.status_code == again.status_code == 201
    assert again.json()["reference"] == first.json()["reference"]
    assert again["Idempotent-Replayed"] == "true"
    assert Waiver.objects.count() == 1
    other = api.post("/api/v1/waivers", request_body(region="EMEA"), HTTP_IDEMPOTENCY_KEY="crm-42")
    assert other.status_code == 422 and other.json()["errors"][0]["code"] == "key_reused"


def test_a_retry_while_the_first_is_running_is_a_conflict(as_, world):
    api = as_("rita")
    IdempotencyRecord.objects.create(
        user=world["rita"],
        key="k1",
        created_at=clock.now(),
        fingerprint=_fingerprint(request_body()),
    )
    response = api.post("/api/v1/waivers", request_body(), HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "in_progress"
    assert Waiver.objects.count() == 0


def _fingerprint(body) -> str:
    import hashlib

    return hashlib.sha256(b"POST /api/v1/waivers\n" + json.dumps(body).encode()).hexdigest()
