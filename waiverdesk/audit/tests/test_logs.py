"""No price or contract figure reaches a log: a request's life through the API, the
worker and its deliveries, logged at DEBUG, says nothing of its money."""

import logging

from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.testing import NOW, request_body
from waiverdesk.webhooks import services as webhooks
from waiverdesk.worker import jobs

FIGURES = {"list_value": 987654, "concession": 123457}


def test_no_price_or_contract_figure_is_logged(world, caplog, settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = True
    webhooks.register("http://127.0.0.1:9/unreachable", [], world["adam"])  # its delivery fails
    caplog.set_level(logging.DEBUG)
    client = Client()

    def call(user, method, path, body=None):
        raw = tokens.create_token(world[user], "t", ["read", "write", "decide"])[1]
        return getattr(client, method)(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
        )

    body = request_body(financials={"currency": "EUR", **FIGURES}, submit=True)
    ref = call("rita", "post", "/api/v1/waivers", body).json()["reference"]
    call("rita", "post", "/api/v1/simulate", body)
    refused = {**body, "financials": {"currency": "EUR", "list_value": 987654, "concession": -5}}
    assert call("rita", "post", "/api/v1/waivers", refused).status_code == 422
    assert call("sam", "get", f"/api/v1/waivers/{ref}").status_code == 404
    decided = call("mona", "post", f"/api/v1/waivers/{ref}/decisions", {"decision": "approve"})
    assert decided.status_code == 201
    jobs.tick(NOW)

    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "Not Found" in logged and "Unprocessable" in logged  # the requests were logged
    for figure in FIGURES.values():
        assert str(figure) not in logged and f"{figure:,}" not in logged
