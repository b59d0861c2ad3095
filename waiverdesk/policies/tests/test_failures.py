"""A published policy that fails on a request anyway: the request is refused at the policy's
place with nothing stored, never a 500, and the policy admins are told once."""

import json

import pytest
from django.conf import settings
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Invalid
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, publish_policy, request_body, request_form
from waiverdesk.waivers import email_intake, services
from waiverdesk.waivers.models import ReferenceCounter, Waiver
from waiverdesk.waivers.tests.test_email_intake import WELL_FORMED, email

# Well typed, and true on the sample request the check runs it on, but a division by zero
# on a request that names no quantity.
DIVIDES = "request.scope.seats / request.scope.quantity >= 1"
PLACE = "tiers[3].when"


@pytest.fixture
def fragile(world):
    for name in ("paula", "rita"):
        world[name].email = f"{name}@example.com"
        world[name].save()
    text = settings.DEFAULT_POLICY_FILE.read_text()
    old = 'when: "risk.compliance >= 4 || risk.level >= 3"'
    assert text.count(old) == 1
    publish_policy(text.replace(old, f'when: "{DIVIDES}"'), note="fragile")
    return world


def failure_reports():
    return AuditEntry.objects.filter(action="policy.failed")


def test_the_api_answers_422_at_the_policy_and_stores_nothing(fragile):
    raw = tokens.create_token(fragile["rita"], "t")[1]
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    for _attempt in range(2):
        answer = client.post(
            "/api/v1/waivers", json.dumps(request_body(submit=True)), "application/json"
        )
        assert answer.status_code == 422
        (error,) = answer.json()["errors"]
        assert error["field"] == "policy" and error["code"] == "policy_failed"
        assert f"the policy's condition {PLACE} cannot be applied" in error["message"]
        assert "Error" not in error["message"]  # no exception's text for the requester
    assert not Waiver.objects.exists() and not ReferenceCounter.objects.exists()
    (report,) = failure_reports()
    assert report.object_ref == "v2" and json.loads(report.payload)["place"] == PLACE
    (mail,) = Message.objects.filter(event="policy.failed")
    assert mail.recipient == "paula@example.com" and PLACE in mail.subject
    assert "division by zero" in mail.body  # the policy admins learn what went wrong


def test_every_door_refuses_it_the_same_way(fragile, trusted_mail_server):
    with pytest.raises(Invalid, match="cannot be applied to this request"):
        services.simulate(request_body())
    with pytest.raises(Invalid, match="cannot be applied to this request"):
        services.create(request_body(submit=True), fragile["rita"], now=NOW)
    draft = services.create(request_body(scope={"seats": 50, "quantity": 5}), fragile["rita"], NOW)
    with pytest.raises(Invalid, match="cannot be applied to this request"):
        services.edit(draft.reference, fragile["rita"], {"scope": {"quantity": 0}}, now=NOW)
    assert services.get(draft.reference).scope["quantity"] == 5
    answer = email_intake.receive(email("rita@example.com", WELL_FORMED), NOW)
    assert "cannot be applied to this request" in answer.body
    assert Waiver.objects.count() == 1
    assert failure_reports().count() == 1


def test_the_web_form_shows_it_as_a_problem_not_an_error_page(fragile):
    rita = Client()
    rita.force_login(fragile["rita"])
    form = request_form(submit="1")
    answer = rita.post("/requests/new/temporary_access/", form)
    assert answer.status_code == 422
    assert f"the policy&#x27;s condition {PLACE} cannot be applied" in answer.content.decode()
    assert not Waiver.objects.exists()
