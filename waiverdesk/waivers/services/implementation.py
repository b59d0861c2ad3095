"""Implementation tasks after approval, and their completion."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied
from waiverdesk.directory.services import roles_of

from ..models import Task, Waiver
from .guards import policy_of


def create_tasks(waiver: Waiver, specs, now: datetime) -> None:
    Task.objects.bulk_create(_task(waiver, spec, now) for spec in specs)


def create_revert_tasks(waivers: list[Waiver], now: datetime) -> None:
    """When exceptions end, their entitlement changes are to be reverted (once each)."""
    specs = [(w, policy_of(w).document.implementation.revert) for w in waivers]
    Task.objects.bulk_create(
        [_task(w, spec, now) for w, spec in specs if spec is not None], ignore_conflicts=True
    )


def _task(waiver: Waiver, spec, now: datetime) -> Task:
    owner = {"requester": waiver.requester, "control_owner": waiver.control_owner}.get(spec.role)
    return Task(
        waiver=waiver,
        name=spec.name,
        title=spec.title,
        role=spec.role,
        owner=owner,
        required=spec.required,
        due=now.date() + timedelta(days=spec.due_days),
        created_at=now,
    )


def may_do(task: Task, by: User) -> bool:
    """Whether `by` may mark `task` done: its owner, a holder of its role, or an admin."""
    roles = roles_of(by)
    if "admin" in roles:
        return True
    return by.pk == task.owner_id if task.owner_id else task.role in roles


def complete_task(task_id: int, by: User, note: str = "", now: datetime | None = None) -> Task:
    """Mark an implementation task done; the worker activates the waiver once its start has
    come and its required tasks are done."""
    now = now or clock.now()
    with audit.atomic():
        task = (
            Task.objects.select_for_update(of=("self",))
            .select_related("waiver", "owner")
            .get(pk=task_id)
        )
        if not may_do(task, by):
            who = task.owner.username if task.owner else f"the {task.role} role"
            raise Denied("not_task_owner", f"this task is for {who}")
        if task.status == Task.State.DONE:
            raise Denied("already_done", "this task is done already")
        task.status, task.done_by, task.done_at, task.note = Task.State.DONE, by, now, note
        task.save()
        audit.append(
            by.username,
            "task.done",
            task.waiver,
            {"task": task.name, "note": note},
            at=now,
        )
    return task
