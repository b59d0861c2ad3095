"""Feedback on the process (F1): once a request is decided, its requester and the people who
decided on it may rate the process from 1 to 5 and say why, once each."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.waivers import access, services
from waiverdesk.waivers.models import Waiver

from .models import Feedback


def role_of(waiver: Waiver, user: User) -> str | None:
    """ "requester" or "approver" when the user may rate this decided request, else None."""
    if not waiver.decision:
        return None
    if waiver.requester_id == user.pk:
        return "requester"
    if waiver.approvals.filter(user=user).exists():
        return "approver"
    return None


def give(reference: str, by: User, rating, comment: str = "", now: datetime | None = None):
    """Record one person's rating of the process behind one decided request."""
    now = now or clock.now()
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise Invalid([Problem("rating", "invalid", "a whole number from 1 to 5")])
    waiver = services.get(access.require_visible(by, reference))
    role = role_of(waiver, by)
    if role is None:
        raise Denied(
            "not_a_party" if waiver.decision else "invalid_state",
            "the requester and the approvers rate a request once it is decided",
        )
    try:
        with transaction.atomic():
            given = Feedback.objects.create(
                waiver=waiver, user=by, role=role, rating=rating, comment=comment.strip(), at=now
            )
            audit.append(by.username, "feedback.given", waiver,
                         {"rating": rating, "role": role}, at=now)  # fmt: skip
    except IntegrityError:
        raise Denied("already_recorded", "you have rated this request already") from None
    return given


def summary(waivers) -> dict:
    """Ratings of these requests: on average, by role, by type, and the latest comments."""
    rows = Feedback.objects.filter(waiver__in=waivers)
    tally = {"average": Avg("rating"), "count": Count("pk")}
    return {
        **rows.aggregate(**tally),
        "by_role": {r["role"]: r for r in rows.values("role").annotate(**tally).order_by("role")},
        "by_type": {
            r["waiver__type"]: r
            for r in rows.values("waiver__type").annotate(**tally).order_by("waiver__type")
        },
        "comments": list(rows.exclude(comment="").select_related("waiver", "user")[:10]),
    }
