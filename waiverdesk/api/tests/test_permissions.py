"""Every endpoint × every kind of caller: what each one gets.

rita requested the waiver (on ACME-001, whose account owner is mark); sam is
another requester; mona is the sales manager the route needs; dana, fiona, leo
and eva approve at other tiers; olga is its control owner; ivan implements (he sees
the waiver once it is approved and has implementation tasks for him);
audrey audits; adam is an admin. "no scope" is the caller who would succeed,
with a token lacking the endpoint's scope; "expired" is rita's expired token.
"""

from datetime import timedelta

import pytest
from django.test import Client

from waiverdesk import clock
from waiverdesk.api import services as tokens
from waiverdesk.api.services import SCOPES
from waiverdesk.testing import once_on_sqlite, request_body
from waiverdesk.waivers import services

# Who may do what is decided in Python, alike on both engines: the matrix runs once.
pytestmark = once_on_sqlite

CALLERS = [
    "rita",
    "sam",
    "mona",
    "dana",
    "fiona",
    "leo",
    "eva",
    "mark",
    "olga",
    "ivan",
    "audrey",
    "adam",
    "anonymous",
    "no scope",
    "expired",
]
APPROVE = {"decision": "approve", "comment": "ok"}
RENEWAL = {
    "end": "2027-05-31",
    "justification": {"benefit": "fresh", "customer_impact": "c", "why_not_standard": "w"},
}


def statuses(default: int, **special: int) -> dict[str, int]:
    table = dict.fromkeys(CALLERS, default)
    table.update(anonymous=401, expired=401, **{"no scope": 403})
    table.update({k.replace("_", " "): v for k, v in special.items()})
    return table


EVERYONE = statuses(200)
VISIBLE_TO = {
    "rita",
    "mona",
    "mark",
    "olga",
    "audrey",
    "adam",
}  # requester, route, owner, reading roles


def visibility(**special: int) -> dict[str, int]:
    return statuses(404, **{**{name: 403 for name in VISIBLE_TO}, **special})


# endpoint: (method, path, body, state of the waiver, scope, who would succeed, expected)
MATRIX = {
    "list": ("get", "/api/v1/waivers", None, "submitted", "read", "rita", EVERYONE),
    "read": (
        "get",
        "/api/v1/waivers/{ref}",
        None,
        "submitted",
        "read",
        "rita",
        visibility(rita=200, mona=200, mark=200, olga=200, audrey=200, adam=200),
    ),
    "create": (
        "post",
        "/api/v1/waivers",
        request_body(),
        None,
        "write",
        "rita",
        statuses(403, rita=201, sam=201, mark=201, adam=201),
    ),
    "submit": (
        "post",
        "/api/v1/waivers/{ref}/submit",
        None,
        "draft",
        "write",
        "rita",
        statuses(404, rita=200, olga=403, audrey=403, adam=200),
    ),
    "withdraw": (
        "post",
        "/api/v1/waivers/{ref}/withdraw",
        {},
        "submitted",
        "write",
        "rita",
        visibility(rita=200, adam=200),
    ),
    "terminate": (
        "post",
        "/api/v1/waivers/{ref}/terminate",
        {"reason": "done"},
        "approved",
        "write",
        "olga",
        visibility(olga=200, adam=200, ivan=403),
    ),
    "renew": (
        "post",
        "/api/v1/waivers/{ref}/renewals",
        RENEWAL,
        "approved",
        "write",
        "rita",
        visibility(rita=201, adam=201, ivan=403),
    ),
    "amend": (
        "post",
        "/api/v1/waivers/{ref}/amendments",
        {"scope": {"seats": 60}},
        "approved",
        "write",
        "rita",
        visibility(rita=201, adam=201, ivan=403),
    ),
    "entitlement changes": (
        "get",
        "/api/v1/entitlements",
        None,
        None,
        "read",
        "ivan",
        statuses(403, ivan=200, audrey=200, adam=200),
    ),
    "effective entitlements": (
        "get",
        "/api/v1/entitlements/effective",
        None,
        None,
        "read",
        "ivan",
        statuses(403, ivan=200, audrey=200, adam=200),
    ),
    "send usage": (
        "post",
        "/api/v1/usage",
        {"records": []},
        None,
        "write",
        "ivan",
        statuses(403, ivan=200, adam=200),
    ),
    "billing discrepancies": (
        "get",
        "/api/v1/billing/discrepancies",
        None,
        None,
        "read",
        "fiona",
        statuses(403, fiona=200, audrey=200, adam=200),
    ),
    "decide": (
        "post",
        "/api/v1/waivers/{ref}/decisions",
        APPROVE,
        "submitted",
        "decide",
        "mona",
        visibility(mona=201),
    ),
    "policy": ("get", "/api/v1/policy", None, None, "read", "rita", EVERYONE),
    "simulate": ("post", "/api/v1/simulate", request_body(), None, "read", "rita", EVERYONE),
    "customers": ("get", "/api/v1/customers", None, None, "read", "rita", EVERYONE),
    "products": ("get", "/api/v1/products", None, None, "read", "rita", EVERYONE),
    "add customer": (
        "post",
        "/api/v1/customers",
        {"external_id": "NEW-1", "name": "New"},
        None,
        "admin",
        "adam",
        statuses(403, adam=201),
    ),
    "add product": (
        "post",
        "/api/v1/products",
        {"code": "NEW", "name": "New", "family": "X"},
        None,
        "admin",
        "adam",
        statuses(403, adam=201),
    ),
    "webhook": (
        "post",
        "/api/v1/webhooks",
        {"url": "https://93.184.215.14/hook"},
        None,
        "admin",
        "adam",
        statuses(403, adam=201),
    ),
    "verify": (
        "get",
        "/api/v1/audit/verify",
        None,
        None,
        "read",
        "audrey",
        statuses(403, audrey=200, adam=200),
    ),
    "patterns": (
        "get",
        "/api/v1/governance/patterns",
        None,
        None,
        "read",
        "audrey",
        statuses(403, audrey=200, adam=200),
    ),
    "review campaigns": (
        "get",
        "/api/v1/governance/campaigns",
        None,
        None,
        "read",
        "olga",
        statuses(403, olga=200, audrey=200, adam=200),
    ),
    "metrics": (
        "get",
        "/api/v1/metrics?period=2027-Q1",
        None,
        None,
        "read",
        "audrey",
        statuses(200, rita=403, sam=403, ivan=403),
    ),
    "feedback": (
        "post",
        "/api/v1/waivers/{ref}/feedback",
        {"rating": 4},
        "approved",
        "write",
        "rita",
        visibility(rita=201, mona=201, ivan=403),
    ),
    "audit entries": (
        "get",
        "/api/v1/audit/entries",
        None,
        None,
        "read",
        "audrey",
        statuses(403, audrey=200, adam=200),
    ),
    "audit proof": (
        "get",
        "/api/v1/audit/proofs/{ref}",
        None,
        "submitted",
        "read",
        "audrey",
        statuses(403, audrey=200, adam=200),
    ),
}


def waiver_in(state: str, world) -> str:
    body = request_body(customer="ACME-001", submit=state != "draft")
    ref = services.create(body, world["rita"]).reference
    if state == "approved":
        services.decide(ref, world["mona"], "approve")
    return ref


def token_for(caller: str, scope: str, who: str, world) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "expired":
        token, raw = tokens.create_token(
            world["rita"], "old", list(SCOPES), clock.now() + timedelta(seconds=1)
        )
        token.expires_at = clock.now() - timedelta(seconds=1)
        token.save()
        return raw
    if caller == "no scope":
        return tokens.create_token(world[who], "narrow", [s for s in SCOPES if s != scope])[1]
    return tokens.create_token(world[caller], "full", list(SCOPES))[1]


CELLS = [(endpoint, caller) for endpoint in MATRIX for caller in CALLERS]


@pytest.mark.parametrize(("endpoint", "caller"), CELLS)
def test_permission_matrix(world, endpoint, caller):
    method, path, body, state, scope, who, expected = MATRIX[endpoint]
    ref = waiver_in(state, world) if state else ""
    raw = token_for(caller, scope, who, world)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else {}
    client = Client()
    if method == "get":
        response = client.get(path.format(ref=ref), **headers)
    else:
        response = client.post(
            path.format(ref=ref), body or {}, content_type="application/json", **headers
        )
    assert response.status_code == expected[caller], response.content
    if response.status_code >= 400:
        assert response.json()["errors"][0]["code"]
