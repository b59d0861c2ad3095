"""The JSON API under /api/v1/: bearer tokens, scopes, and errors that name the field."""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.security import HttpBearer
from pydantic import Field

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.core.policy import PolicyError
from waiverdesk.directory.services import roles_of
from waiverdesk.policies.services import NoActivePolicy
from waiverdesk.waivers.intake import describe
from waiverdesk.waivers.services import NotFound, read_with_policy

from . import services
from .documented import enum

# Refusals because of the waiver's state, not the caller's rights.
CONFLICTS = frozenset(
    {
        "invalid_state",
        "nothing_pending",
        "renewal_exists",
        "amendment_exists",
        "predecessor_ended",
        "already_recorded",
        "already_exists",
    }  # fmt: skip
)


class ErrorOut(Schema):
    field: str | None
    code: str
    message: str


class ErrorsOut(Schema):
    errors: list[ErrorOut]


# Every operation documents the error statuses it may answer with, all in one shape.
ERRORS = {code: ErrorsOut for code in (400, 401, 403, 404, 409, 422)}


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        live = services.authenticate(token)
        if live is not None:
            request.user = live.user
        return live


class MissingScope(Exception):
    pass


def need(request: HttpRequest, scope: str) -> None:
    """Refuse (403) a token that does not carry `scope`."""
    if scope not in request.auth.scopes:
        raise MissingScope(scope)


# What the idempotency middleware (idempotency.py) does for every POST, in the document.
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "Makes a retry safe for 24 hours: the same key with the same request "
    "gets the first response again (marked `Idempotent-Replayed: true`); with another "
    "request, 422; while the first is running, 409.",
}
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the recorded first response to the "
        "Idempotency-Key sent",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class Document(OpenAPISchema):
    """The OpenAPI document as django-ninja makes it, plus what the middleware adds to every
    POST (its Idempotency-Key header and the Idempotent-Replayed answer), served from
    WAIVERDESK_BASE_URL."""

    def __init__(self, api: NinjaAPI, path_prefix: str) -> None:
        super().__init__(api, path_prefix)
        self["servers"] = [{"url": settings.BASE_URL, "description": "WAIVERDESK_BASE_URL"}]

    def operation_details(self, operation):
        details = super().operation_details(operation)
        if "POST" in operation.methods:
            details["parameters"] = [*details["parameters"], IDEMPOTENCY_KEY]
            for status, response in details["responses"].items():
                if int(status) < 300:
                    response["headers"] = REPLAYED
        return details


class Api(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return Document(self, path_prefix)


api = Api(
    title="waiverdesk",
    version="1",
    description="Exception requests for license waivers and special customer arrangements: "
    "intake, policy-driven approval, implementation, usage and audit. Send a token as "
    "`Authorization: Bearer …`; its scopes (read, write, decide, admin, scim) say what it "
    "may do.",
    urls_namespace="api",
    auth=BearerToken(),
    openapi_url="/openapi.json",
    docs_url=None,  # the interactive docs would load Swagger UI from a CDN
)


class TokenOut(Schema):
    user: str
    roles: list[str]
    scopes: list[str] = Field(json_schema_extra=enum(lambda: services.SCOPES))
    expires_at: datetime | None


@api.get("/token", response={200: TokenOut, **ERRORS}, operation_id="getToken",
         summary="Whose token this is and what it may do", tags=["tokens"])  # fmt: skip
def token(request):
    live = request.auth
    return {"user": live.user.username, "roles": sorted(roles_of(live.user)),
            "scopes": live.scopes, "expires_at": live.expires_at}  # fmt: skip


def errors(request, status: int, items: list[dict]):
    return api.create_response(request, {"errors": items}, status=status)


@api.exception_handler(Invalid)
def _invalid(request, exc: Invalid):
    return errors(
        request,
        422,
        [{"field": p.field, "code": p.code, "message": p.message} for p in exc.problems],
    )


# Request bodies refused by their schema before the endpoint runs, answered with the policy's
# problems too (what the service would also have said), so a client sees them all at once.
WAIVER_BODIES = ("/api/v1/waivers", "/api/v1/simulate")


@api.exception_handler(ValidationError)
def _schema_invalid(request, exc: ValidationError):
    if request.method == "POST" and request.path in WAIVER_BODIES:
        try:
            read_with_policy(json.loads(request.body), clock.now())
        except Invalid as invalid:
            return _invalid(request, invalid)
        except (ValueError, NoActivePolicy):
            pass
    items = []
    for error in exc.errors:
        field = ""
        # ("body", <the body parameter>, field…); ("query", parameter) and ("path", parameter)
        loc = list(error.get("loc", ()))
        for part in loc[2:] if loc[:1] == ["body"] else loc[1:]:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        field = field or "body"
        code = {"missing": "required", "extra_forbidden": "unknown_field"}.get(
            error.get("type", ""), "invalid"
        )
        kind, ctx = error.get("type", ""), error.get("ctx") or {}
        message = describe(kind, ctx, error.get("msg", "is invalid"), field)
        items.append({"field": field, "code": code, "message": message})
    return errors(request, 422, items)


@api.exception_handler(Denied)
def _denied(request, exc: Denied):
    if not exc.audited:
        audit.refused_at_door("api", request, exc.code, exc.message)
    return errors(
        request,
        409 if exc.code in CONFLICTS else 403,
        [{"field": None, "code": exc.code, "message": exc.message}],
    )


@api.exception_handler(MissingScope)
def _missing_scope(request, exc: MissingScope):
    audit.refused_at_door("api", request, "missing_scope", f"the token lacks the '{exc}' scope")
    return errors(
        request,
        403,
        [
            {
                "field": None,
                "code": "missing_scope",
                "message": f"this token lacks the '{exc}' scope",
            }
        ],
    )


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return errors(
        request,
        401,
        [
            {
                "field": "Authorization",
                "code": "unauthenticated",
                "message": "send a live token: Authorization: Bearer …",
            }
        ],
    )


@api.exception_handler(NotFound)
@api.exception_handler(Http404)
def _not_found(request, exc):
    audit.refused_at_door("api", request, "not_found", "not found, or not visible")
    return errors(request, 404, [{"field": None, "code": "not_found", "message": "not found"}])


@api.exception_handler(NoActivePolicy)
@api.exception_handler(PolicyError)
def _policy(request, exc):
    return errors(request, 409, [{"field": None, "code": "policy", "message": str(exc)}])


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # Raised by the framework for a body that is not JSON.
    return errors(
        request, exc.status_code, [{"field": "body", "code": "malformed", "message": str(exc)}]
    )


def register_routers() -> None:
    from waiverdesk.audit.api import router as audit_router
    from waiverdesk.billing.api import router as billing_router
    from waiverdesk.directory.api import router as directory_router
    from waiverdesk.entitlements.api import router as entitlement_router
    from waiverdesk.governance.api import router as governance_router
    from waiverdesk.insight.api import router as insight_router
    from waiverdesk.policies.api import router as policy_router
    from waiverdesk.usage.api import router as usage_router
    from waiverdesk.waivers.api import router as waiver_router
    from waiverdesk.waivers.approvals_api import router as approvals_router
    from waiverdesk.webhooks.api import router as webhook_router

    api.add_router("/waivers", waiver_router)
    api.add_router("/", approvals_router)
    api.add_router("/", policy_router)
    api.add_router("/", directory_router)
    api.add_router("/webhooks", webhook_router)
    api.add_router("/audit", audit_router)
    api.add_router("/entitlements", entitlement_router)
    api.add_router("/usage", usage_router)
    api.add_router("/billing", billing_router)
    api.add_router("/governance", governance_router)
    api.add_router("/", insight_router)


register_routers()


def refuse_nul_bytes(get_response):
    """Middleware: text with NUL characters cannot be stored (PostgreSQL refuses it), so an
    API request or a web form carrying one is answered 400 before anything runs; an API body
    over the size limit, 413."""

    def middleware(request: HttpRequest):
        if request.path.startswith("/api/"):
            try:
                request.body  # noqa: B018 - read once, here, so that its size is checked here
            except RequestDataTooBig:
                limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2**20
                problem = {"field": "body", "code": "too_large",
                           "message": f"a request body may be at most {limit} MiB"}  # fmt: skip
                return JsonResponse({"errors": [problem]}, status=413)
        if request.path.startswith("/api/") and (
            b"\\u0000" in request.body
            or b"\x00" in request.body
            or "\x00" in request.path
            or "%00" in request.META.get("QUERY_STRING", "")
        ):
            body = {
                "errors": [
                    {
                        "field": "body",
                        "code": "malformed",
                        "message": "text may not contain NUL characters",
                    }
                ]
            }
            return JsonResponse(body, status=400)
        if not request.path.startswith("/api/") and _form_holds_nul(request):
            return HttpResponseBadRequest(
                "A field of this form holds a NUL character, which cannot be stored: remove it "
                "and send the form again.",
                content_type="text/plain; charset=utf-8",
            )
        return get_response(request)

    return middleware


def _form_holds_nul(request: HttpRequest) -> bool:
    """Whether a web page's query or form fields (not its uploaded files) hold a NUL."""
    if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
        return True
    try:
        fields = request.POST if request.method == "POST" else request.GET
    except MultiPartParserError:
        return False  # the view answers a malformed form
    return any("\x00" in value for _name, values in fields.lists() for value in values)
