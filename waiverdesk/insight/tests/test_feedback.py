"""Feedback (F1): the requester and the approvers rate the process once a request is decided,
once each; others cannot; the ratings show on the metrics page."""

import pytest
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.insight import feedback
from waiverdesk.insight.models import Feedback
from waiverdesk.testing import NOW, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver
from waiverdesk.waivers.services import NotFound


@pytest.fixture
def decided(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    with pytest.raises(Denied, match="once it is decided"):
        feedback.give(ref, world["rita"], 4)
    services.decide(ref, world["mona"], "approve", "ok", now=NOW)
    return ref


def test_requester_and_approver_rate_once_each(world, decided):
    feedback.give(decided, world["rita"], 2, "the form asks twice for the seats")
    feedback.give(decided, world["mona"], 5)
    assert sorted(Feedback.objects.values_list("user__username", "role", "rating")) == [
        ("mona", "approver", 5),
        ("rita", "requester", 2),
    ]
    assert AuditEntry.objects.filter(action="feedback.given", object_ref=decided).count() == 2
    with pytest.raises(Denied, match="already"):
        feedback.give(decided, world["rita"], 3)
    with pytest.raises(Denied, match="the requester and the approvers"):
        feedback.give(decided, world["olga"], 3)  # olga sees it, but took no part in deciding
    with pytest.raises(NotFound):
        feedback.give(decided, world["sam"], 3)  # sam cannot see it at all
    with pytest.raises(Invalid):
        feedback.give(decided, world["mona"], 6)
    summary = feedback.summary(Waiver.objects.all())
    assert (summary["count"], summary["average"]) == (2, 3.5)
    assert [c.comment for c in summary["comments"]] == ["the form asks twice for the seats"]


def test_from_the_waiver_page_and_the_api(world, decided):
    rita = Client()
    rita.force_login(world["rita"])
    assert "How was the process?" in rita.get(f"/requests/{decided}/").content.decode()
    rita.post(f"/requests/{decided}/feedback", {"rating": "4", "comment": "quick"})
    page = rita.get(f"/requests/{decided}/").content.decode()
    assert "You rated this request's process 4 out of 5" in page
    assert "How was the process?" not in page

    raw = tokens.create_token(world["mona"], "t", ["write"])[1]

    def rate(body):
        auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
        path = f"/api/v1/waivers/{decided}/feedback"
        return Client().post(path, body, content_type="application/json", **auth)

    assert rate({"rating": 0}).status_code == 422
    answer = rate({"rating": 5, "comment": "clear"})
    assert answer.status_code == 201 and answer.json()["role"] == "approver"
    assert rate({"rating": 4}).status_code == 409
    audrey = Client()
    audrey.force_login(world["audrey"])
    metrics_page = audrey.get("/metrics/?period=2027-Q1").content.decode()
    assert "2 ratings, 4.5 out of 5 on average" in metrics_page
