"""Deciding a request: approvals, rejections, risk overrides, checks and conditions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.policy import DIMENSIONS, Policy
from waiverdesk.notifications import services as notify

from ..models import Approval, Condition, RouteStep, Waiver
from .filing import start_round, tell_approvers
from .guards import (
    lock,
    policy_of,
    refusals_audited,
    require_predecessor_in_force,
    stakeholders,
    transition,
)
from .implementation import create_tasks
from .separation import require_may_act, require_reviewer
from .successors import supersede


@refusals_audited("override_risk")
def override_risk(
    reference: str,
    by: User,
    dimension: str,
    score: int,
    rationale: str,
    now: datetime | None = None,
) -> Waiver:
    """A reviewer replaces one risk score, with a rationale; the request is routed again."""
    problems = []
    if dimension not in DIMENSIONS:
        problems.append(Problem("dimension", "invalid", f"must be one of {', '.join(DIMENSIONS)}"))
    if not isinstance(score, int) or not 1 <= score <= 5:
        problems.append(Problem("score", "invalid", "must be a whole number from 1 to 5"))
    if not rationale.strip():
        problems.append(Problem("rationale", "required", "say why the score is overridden"))
    if problems:
        raise Invalid(problems)
    now = now or clock.now()
    with transaction.atomic():
        waiver = lock(reference)
        target = transition(waiver, "override_risk")
        require_reviewer(waiver, by)
        previous, old_score = waiver.status, waiver.risk.get(dimension)
        waiver.risk_overrides = {
            **waiver.risk_overrides,
            dimension: {
                "score": score,
                "rationale": rationale,
                "by": by.username,
                "at": now.isoformat(),
            },
        }
        start_round(waiver, now)
        waiver.status, waiver.updated_at = target, now
        waiver.save()
        audit.append(
            by.username,
            "waiver.risk_overridden",
            waiver,
            {
                "from": previous,
                "to": target,
                "dimension": dimension,
                "old": old_score,
                "new": score,
                "rationale": rationale,
                "approvals_reset": True,
            },
            at=now,
        )
    return waiver


@refusals_audited("decide")
def decide(
    reference: str,
    by: User,
    decision: str,
    comment: str = "",
    conditions: list[dict[str, Any]] | None = None,
    checks: list[str] | None = None,
    now: datetime | None = None,
) -> Approval:
    """Approve, reject or request changes on the step the caller may act on."""
    now = now or clock.now()
    if decision not in Approval.Decision.values:
        raise Invalid(
            [Problem("decision", "invalid", "must be approve, reject or request_changes")]
        )
    if decision != "approve" and not comment.strip():
        raise Invalid([Problem("comment", "required", "say why, so the requester can act on it")])
    with transaction.atomic():
        waiver = lock(reference)
        transition(waiver, "approve_step" if decision == "approve" else decision)  # the state table
        route = list(waiver.current_route())
        step = next((s for s in route if s.status == RouteStep.State.PENDING), None)
        policy = policy_of(waiver)
        require_may_act(waiver, step, by, policy)
        new_conditions = _read_conditions(conditions or [], now.date())
        given = step.approvals.filter(decision="approve").count() + (decision == "approve")
        step_done = decision == "approve" and given >= step.required
        later = next((s for s in route if s.position > step.position), None)
        if decision == "approve":
            action = "approve_final" if step_done and later is None else "approve_step"
            _tick_checks(waiver, policy, checks or [], by, now, final=action == "approve_final")
        else:
            action = decision  # reject | request_changes
        if action == "approve_final" and waiver.kind != Waiver.Kind.NEW:
            require_predecessor_in_force(waiver, now.date())
        previous, target = waiver.status, transition(waiver, action)
        approval = Approval.objects.create(
            step=step,
            waiver=waiver,
            round=waiver.round,
            user=by,
            decision=decision,
            comment=comment,
            at=now,
        )
        for c in new_conditions:
            Condition.objects.create(
                waiver=waiver,
                approval=approval,
                text=c.text,
                owner=c.owner,
                due=c.due,
                created_at=now,
            )
        if decision != "approve" or step_done:
            step.status = {"approve": "approved", "reject": "rejected"}.get(decision, "returned")
            step.closed_at = now
            step.save(update_fields=["status", "closed_at"])
        if step_done and later is not None:
            RouteStep.objects.filter(pk=later.pk).update(
                status=RouteStep.State.PENDING, opened_at=now
            )
        if action in ("approve_final", "reject"):
            waiver.decision = "approved" if action == "approve_final" else "rejected"
            waiver.decision_rationale, waiver.decided_at = comment, now
        waiver.status, waiver.updated_at = target, now
        waiver.save()
        if action == "approve_final" and waiver.kind == Waiver.Kind.AMENDMENT:
            supersede(waiver.predecessor, waiver, by, now)
        if action == "approve_final":
            create_tasks(waiver, policy.document.implementation.tasks, now)
        _tell_decision(waiver, policy, action, step, later if step_done else None, now)
        audit.append(
            by.username,
            "waiver.decided",
            waiver,
            {
                "from": previous,
                "to": target,
                "round": waiver.round,
                "tier": step.tier,
                "decision": decision,
                "comment": comment,
                "checks": sorted(checks or []),
                "conditions": [
                    {"text": c.text, "owner": c.owner.username, "due": c.due.isoformat()}
                    for c in new_conditions
                ],
            },
            at=now,
        )
    return approval


def _tick_checks(
    waiver: Waiver, policy: Policy, names: list[str], by: User, now: datetime, final: bool
) -> None:
    """Record checks as passed; the approval that decides the waiver needs them all."""
    required = {c.name for c in policy.types[waiver.type].checks}
    unknown = sorted(set(names) - required)
    if unknown:
        raise Invalid(
            [
                Problem(
                    "checks", "unknown_check", f"{', '.join(unknown)} is not a check of this type"
                )
            ]
        )
    ticked = {**waiver.checks, **{n: {"by": by.username, "at": now.isoformat()} for n in names}}
    missing = sorted(required - set(ticked))
    if final and missing:
        raise Invalid(
            [
                Problem(
                    "checks",
                    "checks_pending",
                    f"record these checks as passed before approving: {', '.join(missing)}",
                )
            ]
        )
    waiver.checks = ticked


def _read_conditions(items: list[dict[str, Any]], today: date) -> list[Any]:
    problems, result = [], []
    for i, item in enumerate(items):
        item = item if isinstance(item, dict) else {}
        text, owner_name, due = (str(item.get(k) or "").strip() for k in ("text", "owner", "due"))
        if not text:
            problems.append(Problem(f"conditions[{i}].text", "required", "say what must be done"))
        owner = User.objects.filter(username=owner_name, is_active=True).first()
        if owner is None:
            problems.append(
                Problem(
                    f"conditions[{i}].owner", "unknown_user", f"no active user named '{owner_name}'"
                )
            )
        try:
            due_date = date.fromisoformat(due)
            if due_date < today:
                problems.append(
                    Problem(
                        f"conditions[{i}].due", "in_past", "the due date must not be in the past"
                    )
                )
        except ValueError:
            due_date = None
            problems.append(
                Problem(f"conditions[{i}].due", "invalid", "must be a date (YYYY-MM-DD)")
            )
        result.append(_Condition(text, owner, due_date))
    if problems:
        raise Invalid(problems)
    return result


@dataclass(frozen=True)
class _Condition:
    text: str
    owner: User | None
    due: date | None


def _tell_decision(waiver, policy, action, step, opened, now) -> None:
    """After a decision: the outcome to those the policy names, or the next tier's turn."""
    if action in ("approve_final", "reject"):
        event = "waiver.approved" if action == "approve_final" else "waiver.rejected"
        people = stakeholders(waiver, policy.document.notify.decisions)
        notify.publish(event, waiver, {"tier": step.tier}, people, now)
    elif action == "request_changes":
        notify.publish(
            "waiver.changes_requested", waiver, {"tier": step.tier}, [waiver.requester], now
        )
    else:
        notify.publish("waiver.decided", waiver, {"tier": step.tier}, [waiver.requester], now)
        if opened is not None:
            tell_approvers(waiver, opened.role, opened.tier, now)
