"""Governance reviews (G2) with a fixed clock: a campaign opens on the policy's cadence, its
control owner re-attests each exception, an overdue review is flagged and then escalated to
compliance, and the campaign closes when every review has its outcome."""

import json
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.conf import settings
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.governance import reviews
from waiverdesk.governance.models import Campaign, Review
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, as_read, finish_required_tasks, publish_policy, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.services import NotFound
from waiverdesk.worker import jobs

START, END = date(2027, 1, 10), date(2027, 3, 10)  # 60 days: the sales manager approves


def at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), UTC)


OPENS = at(START + timedelta(days=31))  # active for over the policy's 30 days


@pytest.fixture
def active(world):
    """Three active exceptions, all owned by olga; everyone has an email address."""
    for user in world.values():
        user.email = f"{user.username}@example.com"
        user.save()
    refs = []
    for _ in range(3):
        body = request_body(start=START.isoformat(), end=END.isoformat(), submit=True)
        ref = services.create(body, world["rita"], now=NOW).reference
        services.decide(ref, world["mona"], "approve", "ok", now=NOW)
        finish_required_tasks(ref, world["ivan"])
        refs.append(ref)
    services.sweep(at(START))
    assert {services.get(r).status for r in refs} == {"active"}
    return refs


def outbox(event: str) -> list[tuple[str, str]]:
    return sorted(
        Message.objects.filter(event=event, channel="email").values_list("object_ref", "recipient")
    )


def test_a_campaign_from_opening_to_completion_with_an_overdue_escalation(world, active):
    w1, w2, w3 = active
    assert not [line for line in jobs.tick(OPENS - timedelta(days=7)) if "review" in line]

    said = jobs.tick(OPENS)
    campaign = Campaign.objects.get()
    assert (campaign.every_days, campaign.due_at) == (90, OPENS + timedelta(days=14))
    assert [(r.waiver.reference, r.owner.username) for r in campaign.reviews.all()] == [
        (ref, "olga") for ref in active
    ]
    assert f"{w1}: review requested from olga" in said
    assert outbox("review.requested") == [(ref, "olga@example.com") for ref in active]
    assert AuditEntry.objects.filter(action="review.requested").count() == 3
    review = {r.waiver.reference: r for r in campaign.reviews.all()}

    reviews.attest(review[w1].pk, world["olga"], "still_needed", "still migrating", OPENS)
    reviews.attest(review[w2].pk, world["olga"], "terminate", "migration done", OPENS)
    assert services.get(w2).status == "terminated"
    assert services.get(w2).ended_reason == "governance review: migration done"

    due = campaign.due_at
    assert f"{w3}: overdue: owner told" in jobs.tick(due + timedelta(hours=1))
    assert outbox("review.overdue") == [(w3, "olga@example.com")]
    assert not [line for line in jobs.tick(due + timedelta(hours=2)) if "overdue" in line]

    escalates = due + timedelta(days=7, hours=1)
    assert f"{w3}: overdue: escalated to compliance" in jobs.tick(escalates)
    assert outbox("review.escalated") == [(w3, "audrey@example.com")]
    assert AuditEntry.objects.filter(action="review.escalated", object_ref=w3).count() == 1
    campaign.refresh_from_db()
    assert campaign.closed_at is None

    later = escalates + timedelta(days=1)
    reviews.attest(review[w3].pk, world["olga"], "amend", "seats should drop to 20", later)
    assert outbox("review.amend") == [(w3, "rita@example.com")]
    campaign.refresh_from_db()
    assert campaign.closed_at == later
    closed = AuditEntry.objects.get(action="campaign.closed")
    assert json.loads(closed.payload)["outcomes"] == {"amend": 1, "still_needed": 1, "terminate": 1}
    assert [e.action for e in AuditEntry.objects.filter(object_ref=w1, action__startswith="review")
            ] == ["review.requested", "review.still_needed"]  # fmt: skip

    # The next campaign of the cadence is a quarter after this one, not sooner.
    assert not [line for line in jobs.tick(OPENS + timedelta(days=60)) if "review" in line]
    assert Campaign.objects.count() == 1


def test_riskier_exceptions_are_reviewed_on_their_own_shorter_cadence(world, active):
    text = settings.DEFAULT_POLICY_FILE.read_text()
    publish_policy(text.replace("{high: 30, critical: 30}", "{low: 10}"), note="low risk: 10")
    jobs.tick(OPENS)
    first = Campaign.objects.get()
    assert (first.every_days, first.reviews.count()) == (10, 3)
    for r in first.reviews.all():
        reviews.attest(r.pk, world["olga"], "still_needed", "fine", OPENS)
    jobs.tick(OPENS + timedelta(days=9))
    assert Campaign.objects.count() == 1
    jobs.tick(OPENS + timedelta(days=10))
    assert Campaign.objects.count() == 2


def test_an_exception_that_ends_closes_its_review(world, active):
    jobs.tick(OPENS)
    services.terminate(active[0], world["olga"], "customer left", now=OPENS)
    assert f"{active[0]}: review closed: the exception ended" in jobs.tick(OPENS)
    assert Review.objects.get(waiver__reference=active[0]).outcome == "ended"


def test_attestations_are_refused_clearly_and_store_nothing(world, active):
    jobs.tick(OPENS)
    review = Review.objects.first()
    with pytest.raises(Invalid) as refused:
        reviews.attest(review.pk, world["olga"], "maybe", " ")
    assert {(p.field, p.code) for p in refused.value.problems} == {
        ("outcome", "invalid_choice"),
        ("rationale", "required"),
    }
    with pytest.raises(NotFound):  # mona cannot see olga's reviews
        reviews.attest(review.pk, world["mona"], "still_needed", "fine")
    with pytest.raises(Denied):  # audrey sees it, but it is not hers to attest
        reviews.attest(review.pk, world["audrey"], "still_needed", "fine")
    review.refresh_from_db()
    assert review.outcome == ""
    refusal = AuditEntry.objects.get(action="review.refused")
    assert as_read(refusal)[0] == "audrey" and "not_owner" in refusal.payload
    reviews.attest(review.pk, world["olga"], "still_needed", "fine")
    with pytest.raises(Denied, match="was recorded"):
        reviews.attest(review.pk, world["olga"], "terminate", "changed my mind")


def test_the_owner_attests_on_the_campaign_page_and_through_the_api(world, active):
    jobs.tick(OPENS)
    campaign = Campaign.objects.get()
    first, second, _ = campaign.reviews.all()
    olga = Client()
    olga.force_login(world["olga"])
    page = olga.get(f"/governance/campaigns/{campaign.pk}/").content.decode()
    assert page.count("Your attestation") == 3 and "0 / 3" in page
    olga.post(f"/governance/reviews/{first.pk}/attest",
              {"outcome": "still_needed", "rationale": "in use"})  # fmt: skip
    assert Review.objects.get(pk=first.pk).outcome == "still_needed"
    assert "1 / 3" in olga.get(f"/governance/campaigns/{campaign.pk}/").content.decode()

    raw = tokens.create_token(world["olga"], "t", ["read", "decide"])[1]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    done = Client().post(f"/api/v1/governance/reviews/{second.pk}",
                         {"outcome": "amend", "rationale": "fewer seats"},
                         content_type="application/json", **auth)  # fmt: skip
    assert done.status_code == 200 and done.json()["outcome"] == "amend"
    again = Client().post(f"/api/v1/governance/reviews/{second.pk}",
                          {"outcome": "amend", "rationale": "x"},
                          content_type="application/json", **auth)  # fmt: skip
    assert again.status_code == 409
    detail = Client().get(f"/api/v1/governance/campaigns/{campaign.pk}", **auth).json()
    assert (detail["done"], detail["open"]) == (2, 1)
    assert [r["outcome"] for r in detail["reviews"]] == ["still_needed", "amend", ""]

    mona = Client()
    mona.force_login(world["mona"])
    assert mona.get(f"/governance/campaigns/{campaign.pk}/").status_code == 403
