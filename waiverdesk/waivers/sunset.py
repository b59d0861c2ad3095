"""What the passing of days brings besides activation and expiry: reminders before an
exception ends, reminders before a condition falls due, breached conditions, and late
implementation tasks."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from waiverdesk.audit import services as audit
from waiverdesk.core.lifecycle import IN_FORCE
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies
from waiverdesk.policies.models import PolicyVersion

from . import services
from .models import Condition, Reminder, Task, Waiver

CONDITION_REMINDER_DAYS = (7, 1)


def remind(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Remind the requester and control owner at the policy's offsets before each end;
    after a pause, only the most urgent reminder due is sent. Never twice."""
    today = now.date()
    done = []
    horizon = today + timedelta(days=_longest_offset())
    ending = services.with_parties(Waiver.objects).filter(
        status__in=IN_FORCE, end__gte=today, end__lte=horizon
    )
    for waiver in ending:
        offsets = services.policy_of(waiver).document.reminders.days_before_end
        due = [d for d in offsets if waiver.end - timedelta(days=d) <= today]
        if not due:
            continue
        days = min(due)
        if dry_run:
            done.append((waiver.reference, f"remind {days} days before the end"))
            continue
        with transaction.atomic():
            if not _first_time(f"waiver:{waiver.pk}:end-{days}", now):
                continue
            left = (waiver.end - today).days
            audit.append("system", "waiver.reminded", waiver, {"days_left": left}, at=now)
            people = services.stakeholders(waiver, ("requester", "control_owner"))
            notify.publish("waiver.expiring", waiver, {"days_left": left}, people, now)
        done.append((waiver.reference, f"reminded {days} days before the end"))
    return done


def check_conditions(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Remind condition owners before the due date; flag conditions past it as breached,
    to their owner and the waiver's control owner."""
    today = now.date()
    done = []
    conditions = Condition.objects.filter(
        status=Condition.State.OPEN,
        waiver__status__in=IN_FORCE,
        due__lte=today + timedelta(days=max(CONDITION_REMINDER_DAYS)),
    ).select_related("owner", "waiver__customer", "waiver__control_owner")
    for condition in conditions:
        waiver = condition.waiver
        if condition.due < today:
            if dry_run:
                done.append((waiver.reference, f"breach: {condition.text}"))
                continue
            with transaction.atomic():
                if not Condition.objects.filter(
                    pk=condition.pk, status=Condition.State.OPEN
                ).update(status=Condition.State.BREACHED):
                    continue  # another worker flagged it
                data = {"condition": condition.text, "due": condition.due.isoformat()}
                audit.append("system", "condition.breached", waiver, data, at=now)
                people = [condition.owner, waiver.control_owner]
                notify.publish("condition.breached", waiver, data, people, now)
            done.append((waiver.reference, f"breached: {condition.text}"))
            continue
        days = min(d for d in CONDITION_REMINDER_DAYS if condition.due - timedelta(d) <= today)
        if dry_run:
            done.append((waiver.reference, f"remind: {condition.text}"))
            continue
        with transaction.atomic():
            if _first_time(f"condition:{condition.pk}:due-{days}", now):
                data = {"condition": condition.text, "due": condition.due.isoformat()}
                notify.publish("condition.due", waiver, data, [condition.owner], now)
                done.append((waiver.reference, f"reminded: {condition.text}"))
    return done


def check_tasks(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Tell whoever should do an implementation task when it is past its due date (once)."""
    late = Task.objects.filter(
        status=Task.State.OPEN, due__lt=now.date(), waiver__status__in=IN_FORCE
    ).select_related("owner", "waiver__customer")
    done = []
    for task in late:
        if dry_run:
            done.append((task.waiver.reference, f"overdue: {task.title}"))
            continue
        with transaction.atomic():
            if _first_time(f"task:{task.pk}:overdue", now):
                people = [task.owner] if task.owner else notify.holders(task.role)
                data = {"task": task.title, "due": task.due.isoformat()}
                notify.publish("task.overdue", task.waiver, data, people, now)
                done.append((task.waiver.reference, f"overdue: {task.title}"))
    return done


def _first_time(key: str, now: datetime) -> bool:
    """Record the reminder `key`; False when it was already sent."""
    try:
        with transaction.atomic():
            Reminder.objects.create(key=key, sent_at=now)
    except IntegrityError:
        return False
    return True


def _longest_offset() -> int:
    return max(
        (max(policies.compiled(v).document.reminders.days_before_end, default=0)
         for v in PolicyVersion.objects.defer("document")),
        default=0,
    )  # fmt: skip
