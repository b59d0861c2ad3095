"""SCIM 2.0 provisioning, checked by a third-party conformance checker (scim2-tester, from
PyPI, in process through the WSGI application), and deprovisioning that ends sessions and
tokens at the next request."""

import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.testing import client_for, pseudonym


@pytest.fixture
def wsgi():
    """The WSGI application, in the test's transaction (as Django's test client keeps it:
    the connection is not closed between requests)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def scim_token(world, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return tokens.create_token(world["adam"], "directory", ["scim"])[1]


def test_the_conformance_checker_finds_every_endpoint_right(scim_token, wsgi):
    client = WSGISCIMClient(wsgi, base_url="http://testserver/scim/v2",
                            headers={"Authorization": f"Bearer {scim_token}"})  # fmt: skip
    results = check_server(client)
    failed = [f"{r.title}: {r.reason}" for r in results if r.status == Status.ERROR]
    assert not failed, "\n".join(failed)
    assert len([r for r in results if r.status == Status.SUCCESS]) >= 60
    # Only what the service says it does not offer is skipped.
    skipped = [f"{r.title}: {r.reason}" for r in results if r.status == Status.SKIPPED]
    assert all(re.search(r"bulk|sort|etag|not supported", s, re.I) for s in skipped), skipped


def scim(token: str):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def call(method: str, path: str, body: dict | None = None):
        send = getattr(client, method.lower())
        answer = send(f"/scim/v2/{path}", json.dumps(body) if body is not None else None,
                      content_type="application/scim+json")  # fmt: skip
        return answer.status_code, (answer.json() if answer.content else None)

    return call


def test_provisioned_people_get_their_groups_roles_and_lose_access_when_deprovisioned(
    scim_token, settings
):
    settings.OIDC_ROLE_MAP = "deal-desk-team=deal_desk,finance-team=finance"
    call = scim(scim_token)
    status, made = call("POST", "Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nora",
        "emails": [{"value": "nora@vendor.example", "primary": True}], "active": True})  # fmt: skip
    assert status == 201 and made["userName"] == "nora"
    status, group = call("POST", "Groups", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "deal-desk-team", "members": [{"value": made["id"]}]})  # fmt: skip
    assert status == 201
    nora = User.objects.get(username="nora")
    assert set(nora.groups.values_list("name", flat=True)) == {"deal_desk"}
    assert call("GET", 'Users?filter=userName eq "nora"')[1]["totalResults"] == 1

    browser = client_for("nora")
    assert browser.get("/settings/").status_code == 200
    _, raw = tokens.create_token(nora, "laptop")
    api = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert Client().get("/api/v1/waivers", **api).status_code == 200

    status, patched = call("PATCH", f"Users/{made['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}]})  # fmt: skip
    assert status == 200 and patched["active"] is False
    assert browser.get("/settings/").status_code == 302  # signed out at the next request
    assert Client().get("/api/v1/waivers", **api).status_code == 401
    assert AuditEntry.objects.filter(
        action="user.deactivated", object_ref=pseudonym("nora")
    ).exists()

    # Out of the group: the role goes; deleted: gone from SCIM, kept here for the trail.
    call("PATCH", f"Groups/{group['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": "members"}]})  # fmt: skip
    assert not nora.groups.exists()
    assert call("DELETE", f"Users/{made['id']}")[0] == 204
    assert call("GET", f"Users/{made['id']}")[0] == 404
    assert User.objects.filter(username="nora", is_active=False).exists()


def test_only_an_admins_token_with_the_scim_scope_may_provision(world, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    wrong = {
        "no token": None,
        "an admin's token without the scim scope": tokens.create_token(world["adam"], "a")[1],
        "a non-admin's scim token": tokens.create_token(world["rita"], "b", ["scim"])[1],
    }
    for why, token in wrong.items():
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        answer = Client().get("/scim/v2/Users", **headers)
        assert answer.status_code == 401, why
        assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
