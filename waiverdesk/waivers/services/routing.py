"""Routing a request: the rounds of its approval route, what starts a new one, and who is
asked to decide its open steps (each with their own links to decide from the email)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User

from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.evaluation import Evaluation
from waiverdesk.core.policy import escalation_role
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies

from .. import decision_links
from ..models import RouteStep, Waiver
from .evaluating import evaluate_waiver, price, store_evaluation
from .guards import policy_of, require_predecessor_in_force
from .separation import deciders, require_fit_control_owner


def material_change(
    waiver: Waiver, before: dict, after: dict, added: list, now: datetime
) -> list[str]:
    """What makes an edit under review start the approvals again: a field the policy calls
    material for the type, evidence a rule reads, or a new route or risk. Empty when the
    approvals given still count (the edit is checked against the policy all the same)."""
    policy = policy_of(waiver)
    spec = policy.types.get(waiver.type)
    if spec is None or before["type"] != after["type"]:
        return ["type"]
    read = set(spec.required_evidence)
    material = [k for k in after if after[k] != before[k] and k in spec.material]
    evidence = after["evidence"], before["evidence"]
    if "evidence" not in material and any(evidence[0].get(k) != evidence[1].get(k) for k in read):
        material.append("evidence")
    material += [f"evidence {a.kind}" for a in added if a.kind in read]
    if material:
        return material
    if after["financials"] != before["financials"]:  # at the rates it was submitted at
        price(waiver, policy, (waiver.submitted_at or now).date())
    evaluation = evaluate_waiver(waiver, policy, now)
    if evaluation.problems:
        raise Invalid(list(evaluation.problems))
    routed = list(waiver.current_route().values_list("tier", flat=True))
    risk = {k: waiver.risk.get(k) for k in evaluation.risk.as_dict()}
    if [s.tier for s in evaluation.route] != routed or evaluation.risk.as_dict() != risk:
        return ["route or risk"]
    return []


def tell_kept(waiver: Waiver, changed: list[str], now: datetime) -> None:
    """An edit that kept the approvals: those who approved this round and those who may
    decide now are told what changed (the latter with fresh decision links)."""
    policy = policy_of(waiver)
    deciding = {u.pk: (u, s) for s in waiver.current_route().filter(status=RouteStep.State.PENDING)
                for u in deciders(waiver, s, policy, now.date())}  # fmt: skip
    approved = [a.user for a in waiver.approvals.filter(round=waiver.round).select_related("user")]

    version = decision_links.version_of(waiver)

    def links(user: User) -> str:
        if user.pk not in deciding:
            return ""
        return decision_links.as_text(waiver, deciding[user.pk][1], user, version)

    people = [*approved, *(u for u, _ in deciding.values())]
    notify.publish("waiver.edited", waiver, {"changed": ", ".join(changed)}, people, now,
                   personal=links)  # fmt: skip


def start_round(
    waiver: Waiver,
    now: datetime,
    version=None,
    evaluation: Evaluation | None = None,
    reprice: bool = True,
) -> Evaluation:
    """Route the request afresh under the active policy; earlier approvals no longer count.

    `evaluation` is the waiver's evaluation under `version` when the caller has just made it;
    `reprice` converts its money at today's rates (a submission), else it keeps its rates.
    """
    version = version or policies.active_version()
    policy = policies.compiled(version)
    if evaluation is None:
        if reprice:  # submitted now: its money at the rates of the day
            price(waiver, policy, now.date())
        evaluation = evaluate_waiver(waiver, policy, now)
    problems = list(evaluation.problems)
    if waiver.control_owner is None:
        problems.append(
            Problem(
                "control_owner",
                "required",
                "name the control owner who stays accountable for the exception",
            )
        )
    if not waiver.outcomes:
        problems.append(
            Problem("outcomes", "required", "name at least one measurable outcome (a KPI)")
        )
    if problems:
        raise Invalid(problems)
    if waiver.kind == Waiver.Kind.RENEWAL:
        require_predecessor_in_force(waiver, now.date())
    require_fit_control_owner(waiver, evaluation.route)
    waiver.policy_version = version
    waiver.round += 1
    waiver.checks = {}
    store_evaluation(waiver, evaluation)
    first = evaluation.route[0].stage  # its steps are open at once
    waiver.in_hand.approvals = {}
    waiver.in_hand.steps = RouteStep.objects.bulk_create(
        RouteStep(
            waiver=waiver,
            round=waiver.round,
            position=i,
            stage=step.stage,
            tier=step.tier,
            role=step.role,
            required=step.required,
            reasons=list(step.reasons),
            sla_hours=(tier := policy.tier(step.tier)).sla_hours,
            delegable=tier.may_delegate,
            escalate_after_hours=tier.escalate_after_hours,
            escalate_to=escalation_role(policy.tiers, tier.name),
            status=RouteStep.State.PENDING if step.stage == first else RouteStep.State.WAITING,
            opened_at=now if step.stage == first else None,
        )
        for i, step in enumerate(evaluation.route)
    )
    return evaluation


def tell_approvers(waiver: Waiver, step: RouteStep, now: datetime, policy=None) -> None:
    """Tell those who may decide `step` that it waits for them, each with their own links to
    decide from the email."""
    waiting = deciders(waiver, step, policy or policy_of(waiver), now.date())
    version = decision_links.version_of(waiver) if waiting else ""

    def links(user: User) -> str:
        return decision_links.as_text(waiver, step, user, version)

    notify.publish("waiver.step_opened", waiver, {"tier": step.tier}, waiting, now, links)
