"""/api/v1/metrics (the dashboard's figures) and /api/v1/waivers/{reference}/feedback."""

from __future__ import annotations

from datetime import datetime

from ninja import Query, Router, Schema, Status
from pydantic import Field

from waiverdesk import clock
from waiverdesk.api.api import ERRORS, need
from waiverdesk.core.errors import Denied
from waiverdesk.web import sees_dashboard

from . import feedback, metrics

router = Router(tags=["metrics"])


class MetricsQuery(Schema):
    # The example is in the description, not in `examples`: django-ninja copies a field's
    # `examples` list onto the query parameter, where OpenAPI wants a map (django-ninja
    # issue 1636), and the document would not validate.
    period: str = Field(..., description="a year, a quarter or a month: 2027, 2027-Q1, 2027-03")
    type: str = ""
    family: str = ""
    region: str = ""


class MetricsOut(Schema):
    period: str
    figures: dict = Field(description="cycle times, approval rate, adherence, concessions, …")
    waits: dict = Field(description="hours steps wait, by tier, role, type and policy version")


class FeedbackIn(Schema):
    rating: int = Field(ge=1, le=5)
    comment: str = ""


class FeedbackOut(Schema):
    reference: str
    role: str
    rating: int
    comment: str
    at: datetime


@router.get("/metrics", operation_id="getMetrics", response={200: MetricsOut, **ERRORS})
def figures(request, q: Query[MetricsQuery]):
    """The metrics of the requests submitted in a period, narrowed by the filters."""
    need(request, "read")
    if not sees_dashboard(request.user):
        raise Denied("missing_role", "metrics are for approvers, control owners and oversight")
    period = metrics.Period.parse(q.period)
    chosen = metrics.Filters(q.type, q.family, q.region)
    now = clock.now()
    return {
        "period": period.label,
        "figures": metrics.compute(period, chosen, now),
        "waits": metrics.bottlenecks(period, chosen, now),
    }


@router.post(
    "/waivers/{reference}/feedback",
    operation_id="giveFeedback",
    response={201: FeedbackOut, **ERRORS},
)
def give(request, reference: str, body: FeedbackIn):
    """Rate the process behind a decided request (its requester and approvers, once each)."""
    need(request, "write")
    given = feedback.give(reference, request.user, body.rating, body.comment)
    return Status(201, {"reference": reference, "role": given.role, "rating": given.rating,
                        "comment": given.comment, "at": given.at})  # fmt: skip
