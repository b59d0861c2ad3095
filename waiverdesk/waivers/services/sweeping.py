"""What the passing of time does: activation on the start date, expiry after the end, and
the lapse of a request nobody decided in time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Exists, F, OuterRef, Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import lifecycle
from waiverdesk.core.lifecycle import AWAITING, IN_FORCE, Status
from waiverdesk.entitlements import services as entitlements
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies
from waiverdesk.policies.models import PolicyVersion

from ..models import RouteStep, Task, Waiver
from .guards import policy_of, stakeholders, with_parties
from .implementation import create_revert_tasks
from .separation import deciders


def due_for_clock(today: date, lapse_after: dict[tuple[int, str], int] | None = None):
    """Waivers that the passing of time activates (their start has come and their required
    tasks are done), ends, or lets lapse today."""
    lapse_after = _lapse_after_days() if lapse_after is None else lapse_after
    work_left = Task.objects.filter(waiver=OuterRef("pk"), required=True, status=Task.State.OPEN)
    lapsing = Q(status__in=AWAITING, end__lt=today)
    for (version, type_name), days in lapse_after.items():
        lapsing |= Q(status__in=AWAITING, policy_version_id=version, type=type_name,
                     start__lte=today - timedelta(days=days))  # fmt: skip
    return Waiver.objects.filter(
        Q(status=Status.APPROVED, start__lte=today, end__gte=today) & ~Exists(work_left)
        | Q(status__in=IN_FORCE, end__lt=today)
        | lapsing
    )


def _lapse_after_days() -> dict[tuple[int, str], int]:
    """(policy version id, type) -> the days after its start when an undecided request lapses,
    for the types whose policy says so."""
    return {
        (version.pk, name): t.lapse_after_days
        for version in PolicyVersion.objects.all()
        for name, t in policies.compiled(version).types.items()
        if t.lapse_after_days is not None
    }


def sweep(
    now: datetime | None = None, dry_run: bool = False, batch: int = 1000
) -> list[tuple[str, str]]:
    """Activate waivers whose start has come (their required work done) and expire those
    whose end has passed, a batch per transaction.

    Each waiver changes only if it is still in the state it was read in and no other
    sweeper holds it, so two sweepers at once never activate or expire a waiver twice,
    and a second run changes nothing.
    """
    now = now or clock.now()
    today = now.date()
    lapse_after = _lapse_after_days()
    rows = (
        due_for_clock(today, lapse_after)
        .order_by("pk")
        .values_list("pk", "reference", "status", "start", "end", "policy_version", "type")
    )
    due = []
    for pk, reference, status, start, end, version, type_name in rows:
        lapse_days = lapse_after.get((version, type_name))
        if action := lifecycle.due_clock_action(status, start, end, today, lapse_days):
            due.append((pk, reference, status, action))
    if dry_run:
        return [(reference, action) for _pk, reference, _status, action in due]
    done = []
    for first in range(0, len(due), batch):
        done += _sweep_batch(due[first : first + batch], now)
    return done


def _close_lapsed(lapsed: list[Waiver], now: datetime) -> None:
    """Close the open steps of requests that lapsed; tell their requesters and those who
    could have decided them."""
    told = []
    for waiver in lapsed:
        policy = policy_of(waiver)
        open_steps = list(waiver.current_route().filter(status=RouteStep.State.PENDING))
        approvers = {u.pk: u for s in open_steps for u in deciders(waiver, s, policy, now.date())}
        told.append((waiver, {"tiers": [s.tier for s in open_steps]},
                     [waiver.requester, *approvers.values()]))  # fmt: skip
    RouteStep.objects.filter(
        waiver__in=lapsed, round=F("waiver__round"),
        status__in=[RouteStep.State.PENDING, RouteStep.State.WAITING],
    ).update(status=RouteStep.State.CLOSED, closed_at=now)  # fmt: skip
    notify.publish_many("waiver.lapsed", told, now)


def _sweep_batch(rows: list[tuple], now: datetime) -> list[tuple[str, str]]:
    with audit.atomic():
        held = dict(
            Waiver.objects.select_for_update(skip_locked=True)
            .filter(pk__in=[r[0] for r in rows])
            .values_list("pk", "status")
        )
        moving = [r for r in rows if held.get(r[0]) == r[2]]  # as read, and not another's
        targets = {}
        for pk, _reference, status, action in moving:
            targets.setdefault((status, lifecycle.next_status(status, action)), []).append(pk)
        for (status, target), pks in targets.items():
            took_effect = {"activated_at": now} if target == Status.ACTIVE else {}
            Waiver.objects.filter(pk__in=pks, status=status).update(
                status=target, updated_at=now, **took_effect
            )
        waivers = {w.pk: w for w in with_parties(Waiver.objects.filter(pk__in=held))}
        _close_lapsed([waivers[pk] for pk, *_ in moving if waivers[pk].status == Status.LAPSED],
                      now)  # fmt: skip
        ended = [waivers[pk] for pk, *_ in moving if waivers[pk].status == Status.EXPIRED]
        create_revert_tasks(ended, now)
        entitlements.grant(
            [waivers[pk] for pk, *_ in moving if waivers[pk].status == Status.ACTIVE], now
        )
        entitlements.revert(ended, now)
        for target in (Status.ACTIVE, Status.EXPIRED):
            changed = [waivers[pk] for pk, *_ in moving if waivers[pk].status == target]
            event = "waiver.activated" if target == Status.ACTIVE else "waiver.expired"
            notify.publish_many(event, [(w, {}, stakeholders(w)) for w in changed], now)
        audit.append_many(
            [
                ("system", f"waiver.{waivers[pk].status}", "waiver", reference,
                 {"from": status, "to": waivers[pk].status, "today": now.date().isoformat()}, now)
                for pk, reference, status, _action in moving
            ]
        )  # fmt: skip
    return [(reference, action) for _pk, reference, _status, action in moving]
