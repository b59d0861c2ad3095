"""Signing in as ASVS level 2 expects: throttled and audited, strong passwords, user names
without look-alikes, and the deployment settings that make it safe on the internet."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit import subjects
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Invalid
from waiverdesk.directory import services as directory
from waiverdesk.testing import pseudonym, request_body

PASSWORD = "a long passphrase"


@pytest.fixture
def rita(world):
    directory.set_password("rita", PASSWORD)
    return world["rita"]


def sign_in(username: str, password: str, address: str = "10.0.0.1", client=None):
    client = client or Client()
    response = client.post("/sign-in/", {"username": username, "password": password},
                           REMOTE_ADDR=address)  # fmt: skip
    return client, response


def actions(action: str) -> list[dict]:
    return [
        payload | {"actor": actor}
        for actor, _ref, payload in subjects.shown(AuditEntry.objects.filter(action=action))
    ]


def test_failed_sign_ins_to_one_account_lock_it_for_a_while_whatever_the_address(rita):
    for i in range(4):
        _, response = sign_in("rita", "wrong guess", address=f"10.0.0.{i}")
        assert response.status_code == 200 and "do not match" in response.content.decode()
    _, response = sign_in("rita", "wrong again", address="10.0.0.5")
    assert response.status_code == 429  # the fifth failure locks the account
    client, response = sign_in("rita", PASSWORD, address="10.9.9.9")  # even the right password
    assert response.status_code == 429
    page = response.content.decode()
    assert re.search(r"Try again after \d\d:\d\d UTC \(in 15 minutes\)", page)
    assert int(response["Retry-After"]) == 900
    assert "_auth_user_id" not in client.session


def test_failed_sign_ins_from_one_address_lock_that_address(rita):
    for name in ("mona", "mark", "dana", "fiona", "leo"):
        sign_in(name, "wrong guess", address="203.0.113.7")
    _, response = sign_in("rita", PASSWORD, address="203.0.113.7")
    assert response.status_code == 429
    _, response = sign_in("rita", PASSWORD, address="198.51.100.1")  # another address
    assert response.status_code == 302


def test_sign_ins_and_sign_outs_are_audited_and_failures_do_not_flood_the_trail(rita):
    for _ in range(3):
        sign_in("rita", "wrong guess")
    failed = actions("user.sign_in_failed")
    assert failed == [{"address": "10.0.0.1", "actor": "rita"}]  # three, counted as one
    client, response = sign_in("rita", PASSWORD)
    assert response.status_code == 302
    assert actions("user.signed_in") == [{"address": "10.0.0.1", "actor": "rita"}]
    client.post("/sign-out/", REMOTE_ADDR="10.0.0.1")
    assert actions("user.signed_out") == [{"address": "10.0.0.1", "actor": "rita"}]


def test_behind_a_proxy_the_clients_address_is_the_one_the_proxy_saw(rita, settings):
    settings.PROXY_COUNT = 1
    Client().post("/sign-in/", {"username": "rita", "password": "nope"}, REMOTE_ADDR="10.1.1.1",
                  HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.44")  # fmt: skip
    assert actions("user.sign_in_failed")[0]["address"] == "192.0.2.44"


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("short one", "at least 12 characters"),
        ("password1234", "too common"),
        ("384729105638", "entirely numeric"),
        ("ritaritarita", "user name, once or repeated"),
        ("RitaRitaRita", "user name, once or repeated"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(world, password, says):
    with pytest.raises(Invalid) as refused:
        directory.set_password("rita", password)
    assert any(says in p.message for p in refused.value.problems)


def test_user_names_are_normalised_and_look_alikes_refused(world):
    assert directory.add_user("ｒｉｔａ", ["requester"]) == world["rita"]  # full-width: NFKC
    for twin in ("r\u0456ta", "Rita", "RITA", "rit\u0430"):  # Cyrillic і and а among them
        with pytest.raises(Invalid) as refused:
            directory.add_user(twin, ["requester"])
        assert refused.value.problems[0].code == "look_alike", twin
        assert "looks like the existing user 'rita'" in refused.value.problems[0].message
    assert not User.objects.filter(username__in=["r\u0456ta", "Rita"]).exists()
    assert directory.add_user("rita2", ["requester"]).username == "rita2"  # a different name


def test_people_added_together_are_checked_as_one_is_and_all_or_none_are_added(world):
    with pytest.raises(Invalid) as refused:
        directory.add_users({"nina": ["requester"], "Nina": ["finance"], "omar": ["wizard"],
                             "rita": ["deal_desk"]})  # fmt: skip
    said = {(p.field, p.code) for p in refused.value.problems}
    assert said == {("username", "look_alike"), ("roles", "unknown_role")}
    assert not User.objects.filter(username__in=["nina", "omar"]).exists()
    assert "deal_desk" not in directory.roles_of(User.objects.get(username="rita"))

    added = directory.add_users({"nina": ["requester"], "rita": ["deal_desk"]}, by="adam")
    assert directory.roles_of(User.objects.get(username="rita")) == {"requester", "deal_desk"}
    assert added["rita"] == world["rita"] and added["nina"].groups.get().name == "requester"
    told = AuditEntry.objects.filter(actor=pseudonym("adam")).order_by("seq")
    shown = [(e.action, ref) for e, (_a, ref, _p) in zip(told, subjects.shown(told), strict=True)]
    assert shown == [("user.added", "nina"), ("user.roles_added", "rita")]


# -- Refusals audited at the doors, without flooding ------------------------------------------


def test_a_missing_scope_and_a_hidden_request_are_audited_once_a_minute(world):
    raw = tokens.create_token(world["rita"], "read only", ["read"])[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    for _ in range(4):
        answer = api.post("/api/v1/waivers", request_body(), content_type="application/json")
        assert answer.status_code == 403
    assert api.get("/api/v1/waivers/WVR-2027-09999").status_code == 404
    refused = [
        (actor, payload["code"], ref)
        for actor, ref, payload in subjects.shown(AuditEntry.objects.filter(action="api.refused"))
    ]
    assert refused == [
        ("rita", "missing_scope", "POST /api/v1/waivers"),
        ("rita", "not_found", "GET /api/v1/waivers/WVR-2027-09999"),
    ]


def test_a_refused_page_and_a_refused_task_are_audited(world):
    from waiverdesk.waivers import services

    ref = services.create(request_body(), world["rita"]).reference
    client = Client()
    client.force_login(world["charlie"])  # no role
    assert client.get("/requests/WVR-2027-09999/").status_code == 404
    client.force_login(world["rita"])
    client.post(f"/requests/{ref}/feedback", {"rating": "5"})  # not decided yet
    refused = AuditEntry.objects.filter(action="web.refused")
    assert [json.loads(e.payload)["code"] for e in refused][0] == "not_found"
    assert len(refused) == 2 and json.loads(refused[1].payload)["code"] != "not_found", [
        e.payload for e in refused
    ]


# -- Pages and deployment ---------------------------------------------------------------------

PAGES = ["/sign-in/", "/requests/", "/inbox/", "/requests/new/", "/dashboard/", "/policy/",
         "/metrics/", "/governance/", "/tokens/", "/preferences/", "/no-such-page/"]  # fmt: skip


def test_every_page_carries_a_content_security_policy_without_inline_code(world):
    client = Client()
    client.force_login(world["adam"])
    for path in PAGES:
        response = client.get(path)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy
        if response["Content-Type"].startswith("text/html"):
            page = response.content.decode()
            assert not re.search(r"<script(?![^>]*\bsrc=)", page), path  # no inline script
            assert not re.search(r"\s(style|on[a-z]+)=", page), path  # nor inline style, handlers


def test_templates_hold_no_inline_script_or_style():
    for template in Path(__file__).parents[2].joinpath("templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\s(style|on[a-z]+)=", text), template


@pytest.mark.parametrize(
    ("back", "lands"),
    [
        ("https://evil.example/", "/governance/"),
        ("//evil.example/x", "/governance/"),
        ("/\\evil.example", "/governance/"),
        ("javascript:alert(1)", "/governance/"),
        ("/requests/", "/requests/"),
    ],
)
def test_a_back_parameter_leads_only_within_the_site(world, back, lands):
    client = Client()
    client.force_login(world["olga"])
    response = client.post("/governance/reviews/999/attest", {"back": back})
    assert response.status_code == 302 and response["Location"] == lands


def test_behind_a_tls_proxy_sign_in_works(rita, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = ["https://waivers.example.com"]
    settings.ALLOWED_HOSTS = ["waivers.example.com"]
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="waivers.example.com",
                     HTTP_X_FORWARDED_PROTO="https")  # fmt: skip
    page = browser.get("/sign-in/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = browser.post("/sign-in/", {"username": "rita", "password": PASSWORD,
                                          "csrfmiddlewaretoken": token},
                            HTTP_ORIGIN="https://waivers.example.com",
                            HTTP_REFERER="https://waivers.example.com/sign-in/")  # fmt: skip
    assert response.status_code == 302


def waiverdesk(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAIVERDESK_")}
    command = [Path(sys.executable).parent / "waiverdesk", *args]
    return subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)


PRODUCTION = {  # as the README documents them
    "WAIVERDESK_SECRET_KEY": "k" * 20 + "3Jx9-sQ_vLr7TzWm2Np8YbHq4Dc6FgKe",
    "WAIVERDESK_SECURE": "1",
    "WAIVERDESK_BASE_URL": "https://waivers.example.com",
    "WAIVERDESK_ALLOWED_HOSTS": "waivers.example.com",
}


def test_check_deploy_passes_with_the_documented_production_settings(tmp_path):
    done = waiverdesk("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION,
                      WAIVERDESK_DATA_DIR=str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    bare = waiverdesk("check", "--deploy", "--fail-level", "WARNING",
                      WAIVERDESK_DATA_DIR=str(tmp_path))  # fmt: skip
    assert bare.returncode != 0 and "SECURE_HSTS_SECONDS" in bare.stderr


def test_serve_refuses_to_start_without_a_secret_key(tmp_path):
    done = waiverdesk("serve", "--bind", "127.0.0.1:0", WAIVERDESK_DATA_DIR=str(tmp_path))
    assert done.returncode != 0 and "set WAIVERDESK_SECRET_KEY" in done.stderr
