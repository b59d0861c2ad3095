"""Steps that wait too long: past its tier's `sla_hours` a step reminds the people who may
decide it, once; past `escalate_after_hours` it escalates to the role the policy names,
whose holders may then decide it too, once. Hours run around the clock (business hours and
holidays are not taken into account)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.lifecycle import UNDER_REVIEW
from waiverdesk.directory.services import roles_of
from waiverdesk.notifications import services as notify

from ..models import RouteStep
from .guards import lock, policy_of
from .separation import deciders


def chase(now: datetime | None = None, dry_run: bool = False) -> list[tuple[str, str]]:
    """Remind and escalate the open steps that are due, each in its own transaction; a step
    is reminded and escalated once, however many workers run."""
    now = now or clock.now()
    open_steps = RouteStep.objects.filter(
        Q(reminded_at__isnull=True) | Q(escalated_at__isnull=True,
                                        escalate_after_hours__isnull=False),
        status=RouteStep.State.PENDING, round=F("waiver__round"),
        waiver__status__in=UNDER_REVIEW, opened_at__isnull=False,
    ).order_by("opened_at", "pk")  # fmt: skip
    done = []
    for pk, reference, opened, sla, escalate, reminded, escalated in open_steps.values_list(
        "pk", "waiver__reference", "opened_at", "sla_hours", "escalate_after_hours",
        "reminded_at", "escalated_at",
    ):  # fmt: skip
        late = now - opened
        if reminded is None and late >= timedelta(hours=sla) and (dry_run or _remind(pk, now)):
            done.append((reference, f"past its {sla} hours: its deciders reminded"))
        if escalate is None or escalated is not None or late < timedelta(hours=escalate):
            continue
        if dry_run or _escalate(pk, now):
            done.append((reference, f"waited {escalate} hours: escalated"))
    return done


def _claim(pk: int, field: str, now: datetime) -> RouteStep | None:
    """The step, if it is still open and nobody has yet set `field` (reminded, escalated);
    set it now. Its waiver is locked first, as a decision locks it: one goes first."""
    reference = RouteStep.objects.filter(pk=pk).values_list("waiver__reference", flat=True)[0]
    lock(reference)
    still_open = RouteStep.objects.filter(pk=pk, status=RouteStep.State.PENDING)
    if not still_open.filter(**{f"{field}__isnull": True}).update(**{field: now}):
        return None  # decided meanwhile, or another worker was first
    return RouteStep.objects.select_related("waiver").get(pk=pk)


def _remind(pk: int, now: datetime) -> bool:
    return _once(pk, "reminded_at", "step.overdue", now)


def _escalate(pk: int, now: datetime) -> bool:
    return _once(pk, "escalated_at", "step.escalated", now)


def _once(pk: int, field: str, event: str, now: datetime) -> bool:
    """Claim the step for `field` and tell of `event` (email, webhook, audit), in one
    transaction: those who may decide it now (once escalated, those of the role it escalated
    to)."""
    with audit.atomic():
        step = _claim(pk, field, now)
        if step is None:
            return False
        waiver = step.waiver
        people = deciders(waiver, step, policy_of(waiver), now.date())
        data = {"tier": step.tier, "sla_hours": step.sla_hours}
        if event == "step.escalated":
            people = [u for u in people if step.escalate_to in roles_of(u)]
            data = {"tier": step.tier, "escalated_to": step.escalate_to,
                    "after_hours": step.escalate_after_hours}  # fmt: skip
        notify.publish(event, waiver, data, people, now)
        told = {"round": step.round, "told": sorted(u.username for u in people)}
        audit.append("system", event, waiver, {**data, **told}, at=now)
    return True
