"""Pattern detection (G3): each pattern is found in a data set built to contain it, with its
evidence and the requests behind it, and none is found in a data set of near misses. The
thresholds are the policy's (lowered here so that a handful of requests reach them)."""

from datetime import date, timedelta

import pytest
from django.conf import settings
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.directory import services as directory
from waiverdesk.governance import patterns
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, publish_policy, request_body
from waiverdesk.waivers import services
from waiverdesk.worker import jobs

LATER = NOW + timedelta(days=3)


@pytest.fixture
def policy(world):
    text = settings.DEFAULT_POLICY_FILE.read_text()
    for default, lowered in [("pair_min_decisions: 10", "pair_min_decisions: 4"),
                             ("type_min_count: 20", "type_min_count: 10"),
                             ("type_min_share: 0.4", "type_min_share: 0.5"),
                             ("near_threshold_min: 5", "near_threshold_min: 3")]:  # fmt: skip
        assert default in text
        text = text.replace(default, lowered)
    publish_policy(text, note="small thresholds")
    for name in ("R-1", "K-1", "N-1", "N-2", "N-3", "N-4"):
        directory.add_customer(name, name, "AMER")
    for user in world.values():
        user.email = f"{user.username}@example.com"
        user.save()
    return world


def request(people, customer: str, decision: str = "", **changes) -> str:
    body = request_body(customer=customer, submit=True, **changes)
    ref = services.create(body, people["rita"], now=NOW).reference
    if decision:
        services.decide(ref, people["mona"], decision, "as seen", now=NOW)
    return ref


def near(concession: int, days: int = 43) -> dict:
    end = date(2027, 2, 1) + timedelta(days=days - 1)
    return {"financials": {"currency": "EUR", "list_value": 100000, "concession": concession},
            "end": end.isoformat()}  # fmt: skip


def renewal(people, ref: str, end: str, decision: str = "") -> str:
    why = {"benefit": f"still needed ({end})", "customer_impact": "c", "why_not_standard": "w"}
    new = services.renew(ref, people["rita"], {"end": end, "justification": why, "submit": True},
                         now=NOW).reference  # fmt: skip
    if decision:
        services.decide(new, people["mona"], decision, "as seen", now=NOW)
    return new


def by_kind(found) -> dict[str, list]:
    kinds = {}
    for f in found:
        kinds.setdefault(f.kind, []).append(f)
    return kinds


def test_each_pattern_is_found_with_its_evidence_and_requests(policy):
    people = policy
    repeated = [request(people, "R-1", "approve") for _ in range(3)]
    under = [request(people, f"N-{i}", **near(c, 85))
             for i, c in enumerate([23000, 24000, 24500, 24900], 1)]  # fmt: skip
    chain = [request(people, "K-1", "approve")]
    chain.append(renewal(people, chain[0], "2027-04-30", "approve"))
    chain.append(renewal(people, chain[1], "2027-06-15"))

    found = by_kind(patterns.findings(LATER))

    assert {(f.evidence["customer"], f.evidence["count"]) for f in found["repeated"]} == {
        ("R-1", 3),
        ("K-1", 3),
    }
    r1 = next(f for f in found["repeated"] if f.evidence["customer"] == "R-1")
    assert sorted(r1.references) == sorted(repeated)

    (ends,) = found["renewal_chain"]
    assert ends.evidence["renewals"] == 2 and ends.references == chain[::-1]

    near_found = {f.evidence["field"]: f for f in found["near_threshold"]}
    assert set(near_found) == {"financials.concession_base", "duration_days"}
    money = near_found["financials.concession_base"]
    assert (money.evidence["threshold"], money.evidence["just_under"]) == (25000, 4)
    assert money.evidence["just_over"] == 0 and sorted(money.references) == sorted(under)
    assert "Deal desk" in money.detail
    days = near_found["duration_days"]
    assert (days.evidence["threshold"], days.evidence["just_under"]) == (91, 4)

    (pair,) = found["approval_pair"]
    assert pair.evidence | {"approver_rate": 1.0} == {
        "requester": "rita", "approver": "mona", "decisions": 5, "approved": 5,
        "approver_rate": 1.0,
    }  # fmt: skip
    assert set(pair.references) == {*repeated, *chain[:2]}

    (volume,) = found["type_volume"]
    assert (volume.evidence["type"], volume.evidence["count"], volume.evidence["share"]) == (
        "temporary_access",
        10,
        1.0,
    )


def test_near_misses_make_no_finding(policy):
    people = policy
    for _ in range(2):  # two of a type per customer, where the policy flags three
        request(people, "R-1", "approve")
    request(people, "N-1", "reject", **near(23000))  # one of four of mona's decisions refused
    request(people, "N-2", **near(26000, 95))  # just under and just over, as many of each
    request(people, "N-3", **near(27000, 96))
    request(people, "N-4", **near(24000, 88))
    first = request(people, "K-1", "approve")
    renewal(people, first, "2027-04-30")  # renewed once, where the policy flags twice
    assert patterns.findings(LATER) == []  # nine requests: short of the ten a type needs


def test_findings_reach_compliance_in_a_digest_the_api_and_the_page(policy):
    people = policy
    refs = [request(people, "R-1") for _ in range(3)]
    said = jobs.tick(LATER)
    assert "patterns: digest of 1 findings sent to 2 people" in said
    digest = Message.objects.filter(event="patterns.digest")
    assert sorted(digest.values_list("recipient", flat=True)) == [
        "audrey@example.com",
        "paula@example.com",
    ]
    assert all(ref in digest.first().body for ref in refs)
    assert not [line for line in jobs.tick(LATER + timedelta(days=6)) if "patterns" in line]
    assert [line for line in jobs.tick(LATER + timedelta(days=7)) if "patterns" in line]

    def api(user):
        raw = tokens.create_token(people[user], "t", ["read"])[1]
        return Client().get("/api/v1/governance/patterns", HTTP_AUTHORIZATION=f"Bearer {raw}")

    answer = api("audrey")
    assert answer.status_code == 200
    assert [(f["kind"], sorted(f["references"])) for f in answer.json()] == [
        ("repeated", sorted(refs))
    ]
    assert api("olga").status_code == 403  # a control owner sees reviews, not patterns
    page = Client()
    page.force_login(people["paula"])
    assert "R-1: 3 temporary_access exceptions" in page.get("/governance/").content.decode()
