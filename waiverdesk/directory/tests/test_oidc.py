"""Signing in with the company's identity provider, against a real OpenID provider
(node-oidc-provider, from the npm registry) run by the tests on a loopback port: the browser
signs in, roles follow the person's groups at every sign-in, forged or stale tokens are
refused, a provider that is down is said to be down, and passwords can be turned off."""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from playwright.sync_api import expect, sync_playwright

from waiverdesk.audit.models import AuditEntry
from waiverdesk.directory import oidc
from waiverdesk.directory import services as directory
from waiverdesk.testing import as_read, big_discount_body, client_for, postgres_only, pseudonym
from waiverdesk.waivers import services

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
CHROMIUM = os.environ.get("WAIVERDESK_CHROMIUM", "/usr/bin/chromium")
CLIENT = {"client_id": "waiverdesk", "client_secret": "s3cret-for-tests-only"}
ROLE_MAP = "deal-desk-team=deal_desk,sales-emea=sales_manager,sales-amer=sales_manager"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def providers(tmp_path_factory):
    """Start an OpenID provider for a callback address, once per address: (issuer, its
    signing key, the accounts file)."""
    started, nodes = {}, []

    def start(base_url: str):
        if base_url in started:
            return started[base_url]
        here = tmp_path_factory.mktemp("oidc")
        key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"},
                                  private=True)  # fmt: skip
        accounts = here / "accounts.json"
        accounts.write_text(json.dumps({"dina": {"email": "dina@vendor.example",
                                                 "groups": ["deal-desk-team"]}}))  # fmt: skip
        port = _free_port()
        config = here / "config.json"
        config.write_text(json.dumps({
            "port": port,
            "accounts": str(accounts),
            "jwks": {"keys": [key.as_dict(private=True)]},
            "clients": [{**CLIENT, "redirect_uris": [f"{base_url}/oidc/callback/"],
                         "post_logout_redirect_uris": [f"{base_url}/sign-in/"]}],
        }))  # fmt: skip
        command = ["node", str(HERE / "oidc_provider.mjs"), str(config)]
        node = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        nodes.append(node)
        said = []  # its warnings (an in-memory store, the Node.js version), then "listening"
        while not (line := node.stdout.readline()).startswith("listening"):
            said.append(line)
            assert line, "".join(said)
        started[base_url] = (f"http://127.0.0.1:{port}", key, accounts)
        return started[base_url]

    yield start
    for node in nodes:
        node.terminate()
        node.wait(10)


def configure(settings, provider, base_url: str) -> None:
    issuer, _key, _accounts = provider
    settings.OIDC_ISSUER = issuer
    settings.OIDC_CLIENT_ID = CLIENT["client_id"]
    settings.OIDC_CLIENT_SECRET = CLIENT["client_secret"]
    settings.OIDC_SCOPES = "openid email profile groups"
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.BASE_URL = base_url


@pytest.fixture
def sso(settings, providers):
    """Single sign-on configured for the test client (no live server)."""
    provider = providers("http://testserver")
    configure(settings, provider, "http://testserver")
    return provider


@postgres_only  # a live server: its data committed, which SQLite's append-only trail refuses
def test_a_person_signs_in_with_the_company_account_and_roles_follow_their_groups(
    settings, providers, live_server, committed_world
):
    provider = providers(live_server.url)
    configure(settings, provider, live_server.url)
    _issuer, _key, accounts = provider
    directory.add_customer("ACME-001", "Acme", "EMEA")
    directory.add_product("DB-ENT", "Database Enterprise", "Database", "high")
    waiver = services.create(big_discount_body(submit=True), User.objects.get(username="rita"))
    services.decide(waiver.reference, User.objects.get(username="mona"), "approve")
    callbacks = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_context(base_url=live_server.url).new_page()
        page.set_default_timeout(15_000)
        page.on("request", lambda r: callbacks.append(r.url) if "/oidc/callback/" in r.url else 0)

        def sign_in_at_the_provider():
            page.goto("/sign-in/")
            page.get_by_role("link", name="Sign in with your company account").click()
            page.locator("input[name=login]").fill("dina")
            page.locator("input[name=password]").fill("anything")
            page.get_by_role("button", name="Sign-in").click()
            if page.get_by_role("button", name="Continue").count():  # the provider's consent
                page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()

        sign_in_at_the_provider()
        page.goto("/inbox/")  # as deal desk (the database is read after the browser is done)
        expect(page.locator("#inbox")).to_contain_text(waiver.reference)

        # The same callback again (its code and state spent) is refused, and signs nobody in.
        page.goto(callbacks[-1])
        expect(page.get_by_role("alert")).to_contain_text("could not be completed or verified")

        # In the provider, dina moves from deal desk to sales: the next sign-in says so here.
        moved = {"email": "dina@vendor.example", "groups": ["sales-amer", "unmapped"]}
        accounts.write_text(json.dumps({"dina": moved}))
        # Signing out here ends the provider's session too (RP-initiated logout), then
        # comes back to the sign-in page.
        page.goto("/settings/")
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Yes, sign me out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        sign_in_at_the_provider()
        browser.close()
    dina = User.objects.get(username="dina")
    assert dina.email == "dina@vendor.example"
    assert set(dina.groups.values_list("name", flat=True)) == {"sales_manager"}
    changes = AuditEntry.objects.filter(action="user.roles_changed", object_ref=pseudonym("dina"))
    assert [as_read(c)[1] for c in changes.order_by("seq")] == [
        {"username": "dina", "added": ["deal_desk"], "removed": []},
        {"username": "dina", "added": ["sales_manager"], "removed": ["deal_desk"]},
    ]
    assert (
        AuditEntry.objects.filter(action="user.signed_in", object_ref=pseudonym("dina")).count()
        == 2
    )


def _token(key, issuer, **claims):
    now = int(time.time())
    body = {"iss": issuer, "aud": CLIENT["client_id"], "sub": "dina", "iat": now,
            "exp": now + 300, "nonce": "n-1", "groups": ["deal-desk-team"], **claims}  # fmt: skip
    return jwt.encode({"alg": "RS256", "kid": "k1"}, body, key)


def test_only_a_token_signed_by_the_provider_for_us_now_and_for_this_sign_in_is_believed(sso):
    issuer, key, _accounts = sso
    provider = oidc.client()

    def claims(token):
        return oidc.verified_claims(provider, {"id_token": token, "access_token": "x"}, "n-1")

    assert claims(_token(key, issuer))["sub"] == "dina"  # the genuine one is believed
    good = _token(key, issuer)
    head, body, signature = good.split(".")
    tampered_body = jwt.decode(good, KeySet([key])).claims | {"sub": "adam"}
    forged = ".".join([head, jwt.encode({"alg": "RS256"}, tampered_body, key).split(".")[1],
                       signature])  # fmt: skip
    other_key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    refused = {
        "tampered": forged,
        "signed by another key": _token(other_key, issuer),
        "for another client": _token(key, issuer, aud="someone-else"),
        "from another issuer": _token(key, "http://127.0.0.1:9/"),
        "for another sign-in (nonce)": _token(key, issuer, nonce="n-0"),
        "expired": _token(
            key, issuer, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
        ),  # fmt: skip
    }
    for why, token in refused.items():
        with pytest.raises((JoseError, ValueError)):
            claims(token)
            pytest.fail(f"a token {why} was believed")


def test_a_provider_that_does_not_answer_is_said_to_be_down(sso, settings, world):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{_free_port()}"
    answer = client_for("anonymous").get("/oidc/authenticate/")
    assert answer.status_code == 503
    assert "sign-in service does not answer" in answer.content.decode()


def test_without_a_provider_configured_there_is_no_company_sign_in(world):
    assert "company account" not in client_for("anonymous").get("/sign-in/").content.decode()
    assert client_for("anonymous").get("/oidc/authenticate/").status_code == 404


def test_with_passwords_turned_off_only_the_break_glass_admin_signs_in_with_one(
    sso, settings, world
):
    settings.OIDC_ONLY, settings.BREAK_GLASS_USER = True, "adam"
    for name in ("rita", "adam"):
        directory.set_password(name, "a long passphrase")
    page = client_for("anonymous").get("/sign-in/").content.decode()
    assert "Sign in with your company account" in page and "Break-glass administrator" in page
    refused = client_for("anonymous").post(
        "/sign-in/", {"username": "rita", "password": "a long passphrase"}
    )
    assert refused.status_code == 200
    assert "Passwords are turned off here" in refused.content.decode()
    admitted = client_for("anonymous").post(
        "/sign-in/", {"username": "adam", "password": "a long passphrase"}
    )
    assert admitted.status_code == 302
