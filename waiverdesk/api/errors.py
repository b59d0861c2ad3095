"""Errors as a client of each door expects them: under /api/ always the JSON error shape
(an unknown path, a wrong method, a body too large, a server fault), and 503 with
Retry-After, never a 500, when the database cannot be reached."""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

UNAVAILABLE = "the service cannot reach its database just now; try again in a few seconds"
CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 503: "unavailable"}


def json_errors(get_response):
    """Middleware, outermost: an error answer under /api/ that is not JSON yet is put in the
    JSON error shape, its status and headers (Allow, Retry-After) kept."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return _as_json(response)
        return response

    return middleware


def _as_json(response: HttpResponse) -> JsonResponse:
    status = response.status_code
    message = HTTPStatus(status).phrase.lower() if status in HTTPStatus._value2member_map_ else ""
    if status == 404:
        message = "no such endpoint; the API is described at /api/openapi.json"
    elif status == 405:
        message = f"this endpoint accepts {response.get('Allow', 'other methods')}"
    elif status == 503:
        message = UNAVAILABLE
    elif status >= 500:
        message = "something went wrong on our side; it has been logged"
    code = CODES.get(status, "server_error" if status >= 500 else "error")
    answer = JsonResponse({"errors": [{"field": None, "code": code, "message": message}]},
                          status=status)  # fmt: skip
    for header in ("Allow", "Retry-After"):
        if header in response:
            answer[header] = response[header]
    return answer


def unavailable(request: HttpRequest) -> HttpResponse:
    """503 for a database that cannot be reached, JSON under /api/."""
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"errors": [{"field": None, "code": "unavailable", "message": UNAVAILABLE}]},
            status=503,
        )
    else:
        response = HttpResponse(
            f"<!doctype html><title>Unavailable</title><h1>waiverdesk is unavailable</h1>"
            f"<p>{UNAVAILABLE.capitalize()}.</p>", status=503,
        )  # fmt: skip
    response["Retry-After"] = "5"
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a lost database is 503; anything else 500, JSON under /api/."""
    error = sys.exc_info()[1]
    if isinstance(error, (OperationalError, InterfaceError)):
        return unavailable(request)
    if request.path.startswith("/api/"):
        return _as_json(HttpResponse(status=500))
    return HttpResponse(
        "<!doctype html><title>Server error</title><h1>Something went wrong</h1>"
        "<p>It has been logged. Try again, or tell your administrator.</p>", status=500,
    )  # fmt: skip
