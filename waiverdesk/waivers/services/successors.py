"""Renewals and amendments: linked requests that go through policy again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import IN_FORCE, OPEN
from waiverdesk.entitlements import services as entitlements
from waiverdesk.notifications import services as notify

from .. import intake
from ..models import Waiver
from .evaluating import policy_failures_reported
from .filing import create_draft, require_initiator
from .guards import lock, refusals_audited, require_requester, stakeholders, transition


def supersede(old: Waiver, new: Waiver, by: User, now: datetime) -> None:
    old = Waiver.objects.select_for_update().get(pk=old.pk)
    previous, target = old.status, transition(old, "supersede")
    old.status, old.ended_reason, old.updated_at = target, f"amended by {new.reference}", now
    old.save()
    entitlements.revert([old], now)
    audit.append(
        by.username,
        "waiver.superseded",
        old,
        {"from": previous, "to": target, "by_amendment": new.reference},
        at=now,
    )


@policy_failures_reported
@refusals_audited("renew")
def renew(reference: str, by: User, data: dict[str, Any], now: datetime | None = None) -> Waiver:
    """Request a renewal: a new linked request with fresh justification and its own route."""
    now = now or clock.now()
    changes = dict(data or {})
    problems = []
    if not isinstance(changes.get("justification"), dict) or not any(
        str(v).strip() for v in changes["justification"].values()
    ):
        problems.append(
            Problem("justification", "required", "a renewal needs a fresh justification")
        )
    if "end" not in changes:
        problems.append(Problem("end", "required", "say until when the renewal should last"))
    if problems:
        raise Invalid(problems)
    return _successor(reference, by, changes, "renew", Waiver.Kind.RENEWAL, now)


@policy_failures_reported
@refusals_audited("amend")
def amend(reference: str, by: User, data: dict[str, Any], now: datetime | None = None) -> Waiver:
    """Request an amendment (scope or dates): a linked request that goes through policy again."""
    if not data:
        raise Invalid([Problem("body", "required", "say what the amendment changes")])
    return _successor(reference, by, dict(data), "amend", Waiver.Kind.AMENDMENT, now or clock.now())


def _successor(reference, by, changes, action, kind, now) -> Waiver:
    with audit.atomic():
        old = lock(reference)
        transition(old, action)
        require_requester(old, by)
        if old.successors.filter(kind=kind, status__in=[*OPEN, *IN_FORCE]).exists():
            raise Denied(f"{kind}_exists", f"{old.reference} already has an open {kind}")
        base = intake.body_of(old)
        if kind == Waiver.Kind.RENEWAL:
            base.update(
                start=(old.end + timedelta(days=1)).isoformat(), justification={}, evidence={}
            )
            if changes["justification"] == old.justification:
                raise Invalid(
                    [
                        Problem(
                            "justification",
                            "not_fresh",
                            "write a fresh justification, not the previous one",
                        )
                    ]
                )
        resolved = intake.read(intake.merge(base, changes))
        require_initiator(resolved.body.type, by)
        if resolved.body.type != old.type:
            raise Invalid([Problem("type", "invalid", f"a {kind} keeps the type {old.type}")])
        waiver = create_draft(
            resolved, by, now, predecessor=old, kind=kind, submit=resolved.body.submit
        )
        if kind == Waiver.Kind.RENEWAL:
            notify.publish(
                "waiver.renewed", old, {"renewal": waiver.reference}, stakeholders(old), now
            )
    return waiver
