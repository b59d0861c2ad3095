"""A quarter whose true figures are known by construction (2027-Q1, the clock fixed):

- five requests submitted on 4 January at 09:00 (temporary access, AMER, AN-EDGE, one tier);
- A (concession 1,000) approved after 10 hours, B (2,000) after 20 hours, C (4,000) rejected
  after 30 hours, D (8,000) still pending, and R a pending renewal of A;
- A and B take effect on 1 February at 00:00; B (ends 1 March) expires on time on 2 March,
  A (ends 15 March) late, on 25 March;
- A leaks: one finding on 10 February;
- two governance reviews fall due in the quarter: one attested in time, one never.
"""

from datetime import UTC, datetime, timedelta

import pytest

from waiverdesk.governance.models import Campaign, Review
from waiverdesk.policies import services as policies
from waiverdesk.testing import NOW, finish_required_tasks, request_body
from waiverdesk.usage.models import Flag
from waiverdesk.waivers import services

DAY = timedelta(days=1)
ACTIVATION = datetime(2027, 2, 1, tzinfo=UTC)


@pytest.fixture
def quarter(world):
    def create(concession: int, end: str = "2027-03-15") -> str:
        body = request_body(end=end, submit=True,
                            financials={"currency": "EUR", "list_value": 20000,
                                        "concession": concession})  # fmt: skip
        return services.create(body, world["rita"], now=NOW).reference

    a, b, c, d = create(1000), create(2000, "2027-03-01"), create(4000), create(8000)
    for ref, hours, decision in ((a, 10, "approve"), (b, 20, "approve"), (c, 30, "reject")):
        services.decide(ref, world["mona"], decision, "seen", now=NOW + timedelta(hours=hours))
    for ref in (a, b):
        finish_required_tasks(ref, world["ivan"])
    why = {"benefit": "still needed", "customer_impact": "c", "why_not_standard": "w"}
    renewal = services.renew(a, world["rita"], {"end": "2027-04-30", "justification": why,
                                                "submit": True}, now=NOW)  # fmt: skip
    services.sweep(ACTIVATION)
    services.sweep(datetime(2027, 3, 2, tzinfo=UTC))
    services.sweep(datetime(2027, 3, 25, tzinfo=UTC))
    Flag.objects.create(waiver=services.get(a), kind=Flag.Kind.OVER_SCOPE, detail="62 seats",
                        found_at=datetime(2027, 2, 10, tzinfo=UTC))  # fmt: skip
    campaign = Campaign.objects.create(
        every_days=90, opened_on=ACTIVATION.date(), opened_at=ACTIVATION,
        due_at=ACTIVATION + 14 * DAY, policy_version=policies.active_version(),
    )  # fmt: skip
    olga, waivers = world["olga"], [services.get(a), services.get(b)]
    Review.objects.create(campaign=campaign, waiver=waivers[0], owner=olga, due_at=campaign.due_at,
                          outcome="still_needed", rationale="in use", decided_by=olga,
                          decided_at=campaign.due_at - DAY)  # fmt: skip
    Review.objects.create(campaign=campaign, waiver=waivers[1], owner=olga, due_at=campaign.due_at)
    return {"A": a, "B": b, "C": c, "D": d, "R": renewal.reference}
