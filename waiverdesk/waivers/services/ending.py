"""Withdrawing a request and terminating an exception early."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.lifecycle import Status
from waiverdesk.entitlements import services as entitlements
from waiverdesk.notifications import services as notify

from ..models import Waiver
from .guards import lock, refusals_audited, require_requester, stakeholders, transition
from .implementation import create_revert_tasks
from .separation import require_terminator


@refusals_audited("withdraw")
def withdraw(reference: str, by: User, reason: str = "", now: datetime | None = None) -> Waiver:
    """The requester takes back a request that is not yet decided."""
    return _end(reference, by, "withdraw", reason, now, require_requester)


@refusals_audited("terminate")
def terminate(reference: str, by: User, reason: str, now: datetime | None = None) -> Waiver:
    """End an approved or active exception early, by someone the policy allows."""
    if not reason.strip():
        raise Invalid([Problem("reason", "required", "say why the exception ends early")])
    return _end(reference, by, "terminate", reason, now, require_terminator)


def _end(reference, by, action, reason, now, authorize) -> Waiver:
    now = now or clock.now()
    with audit.atomic():
        waiver = lock(reference)
        target = transition(waiver, action)
        authorize(waiver, by)
        previous = waiver.status
        waiver.status, waiver.ended_reason, waiver.updated_at = target, reason, now
        waiver.save()
        audit.append(
            by.username,
            f"waiver.{target}",
            waiver,
            {"from": previous, "to": target, "reason": reason},
            at=now,
        )
        if target == Status.TERMINATED:
            create_revert_tasks([waiver], now)
            entitlements.revert([waiver], now)
            notify.publish(
                "waiver.terminated", waiver, {"reason": reason}, stakeholders(waiver), now
            )
    return waiver
