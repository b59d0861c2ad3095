"""The OpenAPI document as client generators and linters read it, and a client generated
from it (openapi-python-client) run against the live server."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.test import Client
from openapi_spec_validator import validate

from waiverdesk.api.services import SCOPES
from waiverdesk.core.lifecycle import Status
from waiverdesk.notifications.events import EVENTS
from waiverdesk.testing import once_on_sqlite

from .test_api import Api

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def document(world, settings):
    settings.BASE_URL = "https://waivers.example.com"
    return Client().get("/api/openapi.json").json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_the_document_is_valid_openapi_3_1_and_lints_clean(document, tmp_path):
    validate(document)  # raises on any error
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    lint = subprocess.run(
        [ROOT / "node_modules/.bin/redocly", "lint", "openapi.json", "--extends", "recommended",
         "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    problems = json.loads(lint.stdout[lint.stdout.index("{") :])["problems"]
    assert [p for p in problems if p["severity"] == "error"] == []
    assert document["servers"] == [
        {"url": "https://waivers.example.com", "description": "WAIVERDESK_BASE_URL"}
    ]


def test_every_operation_has_a_readable_stable_id(document):
    ids = [operation["operationId"] for _m, _p, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", i) for i in ids), ids
    by_route = {(m, p): o["operationId"] for m, p, o in operations(document)}
    assert by_route[("POST", "/api/v1/waivers")] == "createWaiver"
    assert by_route[("GET", "/api/v1/waivers")] == "listWaivers"
    assert by_route[("GET", "/api/v1/waivers/{reference}")] == "getWaiver"
    assert by_route[("POST", "/api/v1/waivers/{reference}/decisions")] == "decideWaiver"
    assert by_route[("POST", "/api/v1/webhooks")] == "createWebhook"
    assert by_route[("GET", "/api/v1/audit/verify")] == "verifyAudit"


def test_enums_name_the_values_a_client_may_send_and_will_read(document):
    schemas = document["components"]["schemas"]
    listing = next(o for m, p, o in operations(document) if (m, p) == ("GET", "/api/v1/waivers"))
    params = {p["name"]: p for p in listing["parameters"]}
    assert schemas[params["status"]["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]]["enum"] == [
        s.value for s in Status
    ]
    types = ["volume_discount", "temporary_access", "term_extension", "seat_overage"]
    assert set(params["type"]["schema"]["anyOf"][0]["enum"]) == set(types)
    assert set(schemas["WaiverBody"]["properties"]["type"]["enum"]) == set(types)
    assert schemas["DecisionIn"]["properties"]["decision"]["enum"] == [
        "approve", "reject", "request_changes"
    ]  # fmt: skip
    assert schemas["WebhookIn"]["properties"]["events"]["items"]["enum"] == list(EVENTS)
    assert schemas["TokenOut"]["properties"]["scopes"]["items"]["enum"] == list(SCOPES)
    for name in ("WaiverBody", "WaiverOut", "WaiverSummary"):
        for field in ("start", "end"):
            assert schemas[name]["properties"][field]["format"] == "date", (name, field)
    assert schemas["ChangesIn"]["properties"]["start"]["anyOf"][0]["format"] == "date"


def test_no_object_property_has_a_default_and_every_post_takes_an_idempotency_key(document):
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            assert not isinstance(prop.get("default"), dict), (name, field)
            assert not ("allOf" in prop and "default" in prop), (name, field)
    for method, path, operation in operations(document):
        if method == "POST":
            headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
            assert headers == ["Idempotency-Key"], path
            ok = next(r for s, r in operation["responses"].items() if s.startswith("2"))
            assert "Idempotent-Replayed" in ok["headers"], path


def test_query_parameter_errors_name_the_parameter_and_unknown_enum_values_are_refused(world, as_):
    api = as_("rita")
    answer = api.get("/api/v1/waivers", status="bogus", limit="many", type="no_such_type")
    assert answer.status_code == 422
    errors = {e["field"]: e["message"] for e in answer.json()["errors"]}
    assert set(errors) == {"status", "limit"}
    assert "draft" in errors["status"] and "Input should" not in errors["status"]
    assert errors["limit"] == "must be a whole number"
    answer = api.get("/api/v1/waivers", type="no_such_type")
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "type"
    assert "temporary_access" in answer.json()["errors"][0]["message"]
    assert api.get("/api/v1/waivers", status="draft", type="temporary_access").status_code == 200


def test_a_token_says_whose_it_is_and_what_it_may_do(as_):
    me = as_("rita", ["read"]).get("/api/v1/token")
    assert me.status_code == 200
    assert me.json()["user"] == "rita" and me.json()["scopes"] == ["read"]
    assert "requester" in me.json()["roles"]


@pytest.fixture
def as_(world):
    from waiverdesk.api import services as tokens

    return lambda name, scopes=None: Api(tokens.create_token(world[name], "t", scopes)[1])


GENERATED_SCENARIO = """
import sys
from waiverdesk_client import AuthenticatedClient
from waiverdesk_client.api.waivers import create_waiver, get_waiver, decide_waiver, list_waivers
from waiverdesk_client.api.webhooks import create_webhook
from waiverdesk_client.api.audit import verify_audit
from waiverdesk_client.models import (WaiverBody, WaiverBodyType, DecisionIn, DecisionInDecision,
    Scope, Financials, Justification, Outcome, WebhookIn, WebhookInEventsItem, WaiverStatus)
import datetime

base, requester, approver, admin = sys.argv[1:5]
def client(token):
    return AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

def ok(answer):
    if hasattr(answer, "errors"):
        sys.exit(f"refused: {answer.to_dict()}")
    return answer

body = WaiverBody(type_=WaiverBodyType.TEMPORARY_ACCESS, customer="ACME-001",
    products=["DB-ENT"], license_type="subscription", region="EMEA",
    start=datetime.date(2027, 1, 1), end=datetime.date(2027, 3, 31), scope=Scope(seats=50),
    financials=Financials(currency="EUR", list_value=120000, concession=1000),
    justification=Justification(benefit="a pilot", alternatives="none",
        customer_impact="renewal at risk", why_not_standard="timing"),
    control_owner="olga", outcomes=[Outcome(metric="seats in use", target=40)], submit=True)
made = ok(create_waiver.sync(client=client(requester), body=body))
print("created", made.reference, made.status.value, made.start.isoformat())
read = ok(get_waiver.sync(client=client(approver), reference=made.reference))
print("route", [s.role for s in read.route], read.route[0].status.value)
decided = ok(decide_waiver.sync(client=client(approver), reference=made.reference,
                             body=DecisionIn(decision=DecisionInDecision.APPROVE, comment="fine")))
print("decided", decided.route[0].status.value)
page = ok(list_waivers.sync(client=client(approver), status=WaiverStatus(decided.status.value)))
print("listed", made.reference in [w.reference for w in page.items])
hook = ok(create_webhook.sync(client=client(admin), body=WebhookIn(url="https://93.184.215.14/hooks/waivers",
                           events=[WebhookInEventsItem.WAIVER_APPROVED])))
print("webhook", hook.secret.startswith("whsec_"))
verified = ok(verify_audit.sync(client=client(admin)))
print("verified", verified.ok, verified.length > 0)
"""


TYPESCRIPT_SCENARIO = """
import createClient from "openapi-fetch";
import type { paths } from "./waiverdesk.js";

declare const process: { argv: string[] };

const [base, requester, approver] = process.argv.slice(2);
const as = (token: string) =>
  createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });

const made = await as(requester).POST("/api/v1/waivers", {
  body: {
    type: "temporary_access", customer: "ACME-001", products: ["DB-ENT"],
    license_type: "subscription", region: "EMEA", start: "2027-01-01", end: "2027-03-31",
    scope: { seats: 50 }, financials: { currency: "EUR", list_value: 120000, concession: 1000 },
    justification: { benefit: "a pilot", alternatives: "none", customer_impact: "renewal at risk",
                     why_not_standard: "timing" },
    outcomes: [{ metric: "seats in use", target: 40 }], control_owner: "olga", submit: true,
  },
  headers: { "Idempotency-Key": "ts-1" },
});
if (!made.data) throw new Error(JSON.stringify(made.error));
const reference: string = made.data.reference;
const decided = await as(approver).POST("/api/v1/waivers/{reference}/decisions", {
  params: { path: { reference } }, body: { decision: "approve", comment: "fine" },
});
if (!decided.data) throw new Error(JSON.stringify(decided.error));
const listed = await as(approver).GET("/api/v1/waivers", {
  params: { query: { status: decided.data.status, limit: 200 } },
});
const found = listed.data?.items.some((w) => w.reference === reference);
console.log(reference, decided.data.route[0].status, found);
"""


@once_on_sqlite
def test_clients_generated_in_python_and_typescript_run_against_the_live_server(served, tmp_path):
    app, url = served
    python_client(app, url, tmp_path / "python")
    typescript_client(app, url, tmp_path / "typescript")


def tokens(app) -> list[str]:
    """Tokens of a requester (rita), an approver (mona) and an admin (adam), made at once."""
    made = app.waiverdesk(
        "shell",
        "--no-imports",
        "-c",
        """
from django.contrib.auth.models import User
from waiverdesk.api.services import create_token
for name, scopes in [("rita", ["read", "write"]), ("mona", ["read", "decide"]),
                     ("adam", ["read", "admin"])]:
    print(create_token(User.objects.get(username=name), "client", scopes)[1])
""",
    )
    return made.split()


def python_client(app, url, tmp_path):
    """openapi-python-client makes every endpoint, without a warning, and its client runs
    a scenario: create with submit, read, decide, list by status, a webhook, the audit."""
    tmp_path.mkdir()
    generated = subprocess.run(
        [BIN / "openapi-python-client", "generate", "--url", f"{url}/api/openapi.json",
         "--meta", "none", "--output-path", tmp_path / "waiverdesk_client"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout
    endpoints = list((tmp_path / "waiverdesk_client/api").rglob("*.py"))
    schema = json.loads(urllib.request.urlopen(f"{url}/api/openapi.json").read())
    operations_count = sum(len(methods) for methods in schema["paths"].values())
    assert len([e for e in endpoints if e.name != "__init__.py"]) == operations_count

    run = subprocess.run([sys.executable, "-c", GENERATED_SCENARIO, url, *tokens(app)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    reference, status, start = lines["created"].split()
    assert status in ("submitted", "in_review") and start == "2027-01-01"
    assert lines["decided"] == "approved"
    assert lines["listed"] == "True"
    assert lines["webhook"] == "True"
    assert lines["verified"] == "True True"


def typescript_client(app, url, tmp_path):
    """openapi-typescript's types of the document type-check a scenario written with
    openapi-fetch (tsc --strict), which then runs against the live server (node)."""
    tmp_path.mkdir()
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    tools = ROOT / "node_modules/.bin"
    # A field with a default may be left out of a request: without this flag openapi-typescript
    # 7 types it as required (its issue 2012); the README says so.
    generated = subprocess.run([tools / "openapi-typescript", f"{url}/api/openapi.json", "-o",
                                "waiverdesk.d.ts", "--default-non-nullable", "false"],
                               cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    (tmp_path / "scenario.mts").write_text(TYPESCRIPT_SCENARIO)
    compiled = subprocess.run([tools / "tsc", "--strict", "--target", "es2022", "--module",
                               "nodenext", "--skipLibCheck", "scenario.mts"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert compiled.returncode == 0, compiled.stdout
    run = subprocess.run(["node", "scenario.mjs", url, *tokens(app)[:2]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    reference, step, found = run.stdout.split()
    assert reference.startswith("WVR-") and (step, found) == ("approved", "true")
