"""Signing in with the company's identity provider: OpenID Connect's authorization code flow
with PKCE, through Authlib (discovery, state, nonce and PKCE kept in the session, the ID
token's signature, issuer, audience, expiry and nonce verified against the provider's
published keys). Who the person is and which roles they hold is `people`'s business; this
module speaks to the provider and says plainly when it cannot."""

from __future__ import annotations

import functools
import logging

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from joserfc.errors import JoseError

from waiverdesk.core.errors import Denied, Invalid

from . import provisioning

log = logging.getLogger(__name__)

CALLBACK = "/oidc/callback/"


def configured() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID)


@functools.cache
def _client(issuer: str, client_id: str, secret: str, scopes: str, timeout: float):
    registry = OAuth()
    return registry.register(
        "company",
        client_id=client_id,
        client_secret=secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": scopes,
            "code_challenge_method": "S256",
            "default_timeout": timeout,
        },  # fmt: skip
    )


def client():
    """The provider, as configured now (one client per configuration, its discovery and
    keys fetched once and kept)."""
    if not configured():
        raise Http404("single sign-on is not configured")
    return _client(settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET,
                   settings.OIDC_SCOPES, settings.OIDC_TIMEOUT)  # fmt: skip


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "sign_in.html", {"refused": message, "sso": configured()},
                  status=status)  # fmt: skip


UNREACHABLE = (
    "The company's sign-in service does not answer just now, so you cannot sign in with "
    "your company account. Try again in a few minutes; if it goes on, tell IT."
)


NOT_VERIFIED = (
    "That sign-in could not be completed or verified. Start again with “Sign in with your "
    "company account”."
)


def authenticate(request: HttpRequest) -> HttpResponse:
    """Start signing in: off to the provider, with state, nonce and a PKCE challenge."""
    provider = client()
    wanted = request.GET.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, {request.get_host()},
                                                  request.is_secure()):  # fmt: skip
        request.session["oidc_next"] = wanted
    try:
        return provider.authorize_redirect(request, settings.BASE_URL + CALLBACK)
    except (requests.RequestException, ValueError) as exc:
        log.warning("identity provider %s unreachable: %s", settings.OIDC_ISSUER, exc)
        return _refused(request, UNREACHABLE, 503)


def callback(request: HttpRequest) -> HttpResponse:
    """The provider's answer: the code exchanged (with the PKCE verifier), the ID token
    verified, the person found or created with the roles their groups give."""
    provider = client()
    try:
        token = provider.authorize_access_token(request)
        claims = verified_claims(provider, token)
    except requests.RequestException as exc:
        log.warning("identity provider %s unreachable: %s", settings.OIDC_ISSUER, exc)
        return _refused(request, UNREACHABLE, 503)
    except (OAuthError, JoseError, ValueError, KeyError, TypeError) as exc:
        log.warning("sign-in with the identity provider refused: %r", exc)
        return _refused(request, NOT_VERIFIED, 400)
    try:
        user = provisioning.from_identity_provider(
            subject=str(claims["sub"]),
            username=_username(claims),
            email=str(claims.get("email") or ""),
            groups=_groups(claims),
        )
    except (Denied, Invalid) as exc:
        return _refused(request, f"You cannot sign in here: {exc}.", 403)
    login(request, user, backend="waiverdesk.directory.signing_in.PasswordBackend")
    request.session["oidc_id_token"] = token.get("id_token", "")
    wanted = request.session.pop("oidc_next", "")
    return HttpResponseRedirect(wanted or resolve_url(settings.LOGIN_REDIRECT_URL))


def verified_claims(provider, token: dict, nonce: str | None = None) -> dict:
    """The person's claims from a token answer whose ID token was verified (Authlib checks it
    when the flow's nonce is known; `nonce` checks one given here). The groups claim, when the
    ID token leaves it out, is read from the userinfo endpoint, for the same subject."""
    if nonce is not None:
        token = {**token, "userinfo": provider.parse_id_token(token, nonce=nonce)}
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        raise ValueError("the provider's answer holds no verified ID token")
    claims = dict(claims)
    if settings.OIDC_GROUPS_CLAIM not in claims and "access_token" in token:
        more = provider.userinfo(token=token)
        if more.get("sub") != claims["sub"]:
            raise ValueError("userinfo speaks of another subject than the ID token")
        claims = {**more, **claims}
    return claims


def _username(claims: dict) -> str:
    name = claims.get("preferred_username") or claims.get("email") or claims["sub"]
    return str(name).split("@", 1)[0]


def _groups(claims: dict) -> list[str]:
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    return [str(g) for g in groups if isinstance(g, str | int)]


def sign_out_at_provider(request: HttpRequest, id_token: str) -> HttpResponse | None:
    """Where the provider offers RP-initiated logout, the redirect that ends its session too
    (after the local one has ended); else None."""
    if not id_token or not configured():
        return None
    try:
        provider = client()
        if not provider.load_server_metadata().get("end_session_endpoint"):
            return None
        return provider.logout_redirect(
            request, post_logout_redirect_uri=settings.BASE_URL + "/sign-in/",
            id_token_hint=id_token,
        )  # fmt: skip
    except (requests.RequestException, ValueError, RuntimeError) as exc:
        log.warning("identity provider sign-out skipped: %s", exc)
        return None
