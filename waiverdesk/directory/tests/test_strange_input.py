"""Strange input at the administration pages and at SCIM: refused in words, never a 500,
nothing half-made (the column limits are PostgreSQL's, so this runs on both engines)."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.directory.models import Customer, Product, ProvisionedGroup
from waiverdesk.testing import client_for

LONG = "x" * 5000
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

PAGES = [
    ("/manage/customers/", {"external_id": LONG, "name": LONG, "contact_email": LONG}),
    ("/manage/customers/ACME-001/", {"name": LONG, "region": "MARS", "account_owner": "zz"}),
    ("/manage/products/", {"code": LONG, "name": LONG, "family": LONG, "risk_class": "low"}),
    ("/people/olga/change", {"action": "roles", "roles": [LONG]}),
    ("/people/olga/change", {"action": "hand_over", "to": LONG}),
    ("/people/olga/change", {"action": LONG}),
    ("/people/olga/change", {"action": "revoke_token", "token": LONG}),
    ("/password/", {"current": LONG, "new": LONG, "again": LONG}),
]


@pytest.mark.parametrize(("path", "form"), PAGES)
def test_the_admin_pages_refuse_strange_input_in_words(world, path, form):
    answer = client_for("adam").post(path, form)
    assert answer.status_code in (302, 404, 422)
    assert not Product.objects.filter(code=LONG).exists()
    assert Customer.objects.count() == 2


SCIM = [
    ("post", "Users", "[]", "the body must be a JSON object"),
    ("post", "Users", "{bad", "the body is not JSON"),
    ("post", "Users", {"schemas": [USER], "userName": LONG}, "userName: at most 150"),
    ("post", "Users", {"schemas": [USER], "userName": "ok", "externalId": LONG}, "externalId"),
    ("post", "Groups", {"schemas": [GROUP], "displayName": LONG}, "displayName: at most 255"),
    ("post", "Groups", {"schemas": [GROUP], "displayName": "g", "members": [{"value": "abc"}]},
     "members: no user abc"),
    ("get", "Users?filter=userName%20eq", None, "filter"),
    ("get", "Users?startIndex=x", None, "startIndex"),
    ("patch", "Users/{adam}", {"Operations": 5}, "Operations"),
    ("get", "Users/99999999999999999999999", None, "no user"),
    # A rename is checked as a new name is: letters, and no look-alike of another person.
    ("put", "Users/{adam}", {"schemas": [USER], "userName": "a b!"}, "use letters"),
    ("put", "Users/{adam}", {"schemas": [USER], "userName": "Rita"}, "looks like the existing"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "said"), SCIM)
def test_scim_refuses_strange_input_with_a_scim_error(world, settings, method, path, body, said):
    settings.ALLOWED_HOSTS = ["testserver"]
    raw = tokens.create_token(world["adam"], "directory", ["scim"])[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    payload = body if isinstance(body, str) or body is None else json.dumps(body)
    send = getattr(client, method)
    path = path.format(adam=world["adam"].pk)
    answer = (send(f"/scim/v2/{path}", payload, content_type="application/scim+json")
              if payload is not None else send(f"/scim/v2/{path}"))  # fmt: skip
    assert 400 <= answer.status_code < 500
    assert said in answer.json()["detail"]
    assert not ProvisionedGroup.objects.exists()
    assert User.objects.filter(username="adam").exists()  # not renamed
