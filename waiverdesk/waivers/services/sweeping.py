"""What the passing of time does: activation on the start date, expiry after the end."""

from __future__ import annotations

from datetime import date, datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import lifecycle
from waiverdesk.core.lifecycle import IN_FORCE, Status
from waiverdesk.entitlements import services as entitlements
from waiverdesk.notifications import services as notify

from ..models import Task, Waiver
from .guards import stakeholders, with_parties
from .implementation import create_revert_tasks


def due_for_clock(today: date):
    """Waivers that the passing of time activates (their start has come and their required
    tasks are done) or ends today."""
    work_left = Task.objects.filter(waiver=OuterRef("pk"), required=True, status=Task.State.OPEN)
    return Waiver.objects.filter(
        Q(status=Status.APPROVED, start__lte=today, end__gte=today) & ~Exists(work_left)
        | Q(status__in=IN_FORCE, end__lt=today)
    )


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
    due = [
        (pk, reference, status, action)
        for pk, reference, status, start, end in due_for_clock(today)
        .order_by("pk")
        .values_list("pk", "reference", "status", "start", "end")
        if (action := lifecycle.due_clock_action(status, start, end, today))
    ]
    if dry_run:
        return [(reference, action) for _pk, reference, _status, action in due]
    done = []
    for first in range(0, len(due), batch):
        done += _sweep_batch(due[first : first + batch], now)
    return done


def _sweep_batch(rows: list[tuple], now: datetime) -> list[tuple[str, str]]:
    with transaction.atomic():
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
