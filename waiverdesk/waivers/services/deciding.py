"""Deciding a request: approvals, rejections, risk overrides, checks and conditions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import UNDER_REVIEW
from waiverdesk.core.policy import DIMENSIONS, Policy
from waiverdesk.notifications import services as notify

from .. import decision_links as links
from ..decision_links import Link
from ..models import Approval, Condition, RouteStep, Waiver
from .evaluating import policy_failures_reported
from .guards import (
    lock,
    policy_of,
    refusals_audited,
    require_predecessor_in_force,
    stakeholders,
    transition,
    with_parties,
)
from .implementation import create_tasks
from .routing import start_round, tell_approvers
from .separation import require_reviewer, step_for
from .successors import supersede


@policy_failures_reported
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
    with audit.atomic():
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
        start_round(waiver, now, reprice=False)  # re-routed, at the rates it was submitted at
        waiver.status, waiver.updated_at = target, now
        waiver.save()
        for step in waiver.current_route().filter(status=RouteStep.State.PENDING):
            tell_approvers(waiver, step, now)
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
    tier: str | None = None,
    link: Link | None = None,
) -> Approval:
    """Approve, reject or request changes on the step the caller may act on (of `tier`,
    when several are open at once). A delegate decides for the approver who is away.
    With `link` (from an email), only for the round and the version of the request it
    names, and once."""
    now = now or clock.now()
    if decision not in Approval.Decision.values:
        raise Invalid(
            [Problem("decision", "invalid", "must be approve, reject or request_changes")]
        )
    if decision != "approve" and not comment.strip():
        raise Invalid([Problem("comment", "required", "say why, so the requester can act on it")])
    with audit.atomic():
        waiver = lock(reference)
        if link is not None:  # a link's own limits first: its person, its use, its round
            links.require_current(link, waiver, by)
        transition(waiver, "approve_step" if decision == "approve" else decision)  # the state table
        route = waiver.current_steps()  # its approvals in hand with it
        policy = policy_of(waiver)
        step, delegator = step_for(waiver, by, policy, now.date(), tier)
        new_conditions = _read_conditions(conditions or [], now.date())
        approved = [a for a in waiver.in_hand.approvals.get(step.pk, []) if a.decision == "approve"]
        given = len(approved) + (decision == "approve")
        step_done = decision == "approve" and given >= step.required
        beside = [s for s in route if s.stage == step.stage and s.pk != step.pk]
        stage_done = step_done and all(s.status == RouteStep.State.APPROVED for s in beside)
        later = [s for s in route if s.stage > step.stage]
        opening = [s for s in later if s.stage == later[0].stage] if later else []
        if decision == "approve":
            action = "approve_final" if stage_done and not later else "approve_step"
            _tick_checks(waiver, policy, checks or [], by, now, step, route, step_done)
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
            on_behalf_of=delegator,
            decision=decision,
            comment=comment,
            at=now,
        )
        waiver.in_hand.approvals.setdefault(step.pk, []).append(approval)
        for c in new_conditions:
            Condition.objects.create(
                waiver=waiver,
                approval=approval,
                text=c.text,
                owner=c.owner,
                due=c.due,
                customer_visible=c.customer_visible,
                created_at=now,
            )
        if decision != "approve" or step_done:
            step.status = {"approve": "approved", "reject": "rejected"}.get(decision, "returned")
            step.closed_at = now
            step.save(update_fields=["status", "closed_at"])
        if decision != "approve":  # the round is over: the steps open beside it close
            closing = [s for s in beside if s.status == RouteStep.State.PENDING]
            RouteStep.objects.filter(pk__in=[s.pk for s in closing]).update(
                status=RouteStep.State.CLOSED, closed_at=now
            )
            for s in closing:
                s.status, s.closed_at = RouteStep.State.CLOSED, now
        opened = opening if stage_done else []
        RouteStep.objects.filter(pk__in=[s.pk for s in opened]).update(
            status=RouteStep.State.PENDING, opened_at=now
        )
        if action in ("approve_final", "reject"):
            waiver.decision = "approved" if action == "approve_final" else "rejected"
            waiver.decision_rationale, waiver.decided_at = comment, now
        waiver.status, waiver.updated_at = target, now
        waiver.save()
        if link is not None:
            links.use(link, now)
        if action == "approve_final" and waiver.kind == Waiver.Kind.AMENDMENT:
            supersede(waiver.predecessor, waiver, by, now)
        if action == "approve_final":
            create_tasks(waiver, policy.document.implementation.tasks, now)
        for s in opened:
            s.status, s.opened_at = RouteStep.State.PENDING, now
        _tell_decision(waiver, policy, action, step, opened, now)
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
                **({"on_behalf_of": delegator.username} if delegator else {}),
                **({"by_email_link": True} if link else {}),
                "checks": sorted(checks or []),
                "conditions": [
                    {
                        "text": c.text,
                        "owner": c.owner.username,
                        "due": c.due.isoformat(),
                        "customer_visible": c.customer_visible,
                    }
                    for c in new_conditions
                ],
            },
            at=now,
        )
    return approval


def _tick_checks(
    waiver: Waiver,
    policy: Policy,
    names: list[str],
    by: User,
    now: datetime,
    step: RouteStep,
    route: list[RouteStep],
    step_done: bool,
) -> None:
    """Record checks as passed. Each is recorded by the approvers of the tier the policy names
    for it (when that tier is on the route), else of the final step; the approval that
    completes that step needs them all."""
    specs = {c.name: c for c in policy.types[waiver.type].checks}
    unknown = sorted(set(names) - set(specs))
    if unknown:
        raise Invalid(
            [
                Problem(
                    "checks", "unknown_check", f"{', '.join(unknown)} is not a check of this type"
                )
            ]
        )
    on_route = {s.tier for s in route}
    recorder = {n: c.tier if c.tier in on_route else route[-1].tier for n, c in specs.items()}
    for name in names:
        if recorder[name] != step.tier:
            tier = policy.tier(recorder[name])
            raise Denied(
                "checks_not_yours",
                f"“{specs[name].label}” is recorded by the {tier.label or tier.name} step",
            )
    ticked = {**waiver.checks, **{n: {"by": by.username, "at": now.isoformat()} for n in names}}
    due = {n for n, tier in recorder.items() if tier == step.tier or step.pk == route[-1].pk}
    missing = sorted(due - set(ticked))
    if step_done and missing:
        labels = "; ".join(specs[n].label for n in missing)
        raise Invalid(
            [
                Problem(
                    "checks",
                    "checks_pending",
                    f"record these checks as passed before approving: {labels}",
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
        told = item.get("customer_visible", False)
        if isinstance(told, str):  # a form's checkbox, a command line's word
            told = _YES_NO.get(told.strip().lower(), told)
        if not isinstance(told, bool):
            problems.append(Problem(f"conditions[{i}].customer_visible", "invalid",
                                    "say yes or no: is it told to the customer?"))  # fmt: skip
        result.append(_Condition(text, owner, due_date, told is True))
    if problems:
        raise Invalid(problems)
    return result


_YES_NO = {"": False, "0": False, "false": False, "no": False, "off": False,
           "1": True, "true": True, "yes": True, "on": True}  # fmt: skip


@dataclass(frozen=True)
class _Condition:
    text: str
    owner: User | None
    due: date | None
    customer_visible: bool = False


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
        for later in opened:
            tell_approvers(waiver, later, now, policy)


def void_conflicted_approvals(customer_id: int, owner: User, by: str, now: datetime) -> list[str]:
    """`owner` has become the customer's account owner: their approvals in the current round
    of its requests under review (theirs, or a delegate's for them) no longer count, and the
    route goes back to their step (approvals of later stages, which stood on it, with it).
    Returns the references."""
    voided = []
    waivers = Waiver.objects.select_for_update(of=("self",)).filter(
        customer_id=customer_id, status__in=UNDER_REVIEW
    )
    for waiver in with_parties(waivers).order_by("pk"):
        if "account_owner" not in policy_of(waiver).document.separation_of_duties.conflicted:
            continue
        theirs = Approval.objects.filter(
            Q(user=owner) | Q(on_behalf_of=owner), waiver=waiver, round=waiver.round
        ).first()
        if theirs is None:
            continue
        step = theirs.step
        undone = Approval.objects.filter(
            Q(pk=theirs.pk) | Q(step__stage__gt=step.stage), waiver=waiver, round=waiver.round
        )
        people = sorted(undone.values_list("user__username", flat=True))
        undone.delete()  # their conditions with them
        waiver.current_route().filter(stage__gt=step.stage).update(
            status=RouteStep.State.WAITING, opened_at=None, closed_at=None
        )
        RouteStep.objects.filter(pk=step.pk).update(status=RouteStep.State.PENDING, closed_at=None)
        waiver.checks = {n: c for n, c in waiver.checks.items() if c["by"] not in people}
        previous = waiver.status
        if not Approval.objects.filter(waiver=waiver, round=waiver.round).exists():
            waiver.status = transition(waiver, "void_approval")
        waiver.updated_at = now
        waiver.save()
        step.status = RouteStep.State.PENDING
        tell_approvers(waiver, step, now)
        moved = {"from": previous, "to": waiver.status} if previous != waiver.status else {}
        audit.append(by, "waiver.approvals_voided", waiver,
                     {**moved, "round": waiver.round, "tier": step.tier, "voided": people,
                      "because": f"{owner.username} became the customer's account owner"},
                     at=now)  # fmt: skip
        voided.append(waiver.reference)
    return voided
