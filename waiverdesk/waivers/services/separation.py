"""Separation of duties: who may decide, shape, review and end a waiver."""

from __future__ import annotations

from django.contrib.auth.models import User

from waiverdesk.core import lifecycle
from waiverdesk.core.errors import Denied
from waiverdesk.core.lifecycle import IllegalTransition
from waiverdesk.core.policy import Policy
from waiverdesk.directory.services import roles_of

from ..models import Approval, RouteStep, Waiver
from .guards import policy_of, require_requester


def may_act(waiver: Waiver, by: User) -> str | None:
    """Why `by` may not act on the waiver's pending step, or None when they may."""
    step = waiver.current_route().filter(status=RouteStep.State.PENDING).first()
    try:
        require_may_act(waiver, step, by, policy_of(waiver))
    except Denied as denied:
        return denied.message
    return None


def require_may_act(waiver: Waiver, step: RouteStep | None, by: User, policy: Policy) -> None:
    if step is None:
        raise Denied("nothing_pending", "no step of this waiver is waiting for a decision")
    if by.pk == waiver.requester_id:
        raise Denied("self_approval", "you requested this waiver, so you may not decide on it")
    conflicted = policy.document.separation_of_duties.conflicted
    if "account_owner" in conflicted and waiver.customer.account_owner_id == by.pk:
        raise Denied(
            "conflict_of_interest",
            "you own this customer's account, so you may not decide on its exceptions",
        )
    if "control_owner" in conflicted and waiver.control_owner_id == by.pk:
        raise Denied(
            "conflict_of_interest",
            "you are the control owner of this waiver, so you may not decide on it",
        )
    if step.role not in roles_of(by):
        raise Denied("missing_role", f"the {step.tier} step needs the {step.role} role")
    if Approval.objects.filter(waiver=waiver, round=waiver.round, user=by).exists():
        raise Denied(
            "already_on_route",
            "you have already decided on a step of this route; one person fills one step",
        )


def require_reviewer(waiver: Waiver, by: User) -> None:
    if by.pk == waiver.requester_id:
        raise Denied("self_approval", "the requester may not override the risk of their request")
    route_roles = set(waiver.current_route().values_list("role", flat=True))
    if not roles_of(by) & (route_roles | {"policy_admin"}):
        raise Denied("not_reviewer", "only a reviewer on this route may override its risk")


def require_terminator(waiver: Waiver, by: User) -> None:
    allowed = policy_of(waiver).document.termination.roles
    person = ("control_owner" in allowed and by.pk == waiver.control_owner_id) or (
        "requester" in allowed and by.pk == waiver.requester_id
    )
    held = roles_of(by) & (set(allowed) - {"control_owner", "requester"})
    if not person and not held:
        raise Denied("not_allowed", f"the policy lets {', '.join(allowed)} terminate an exception")


def allowed(waiver: Waiver, by: User, action: str) -> bool:
    """Whether the state table and the rules let `by` do `action` (withdraw, edit, submit,
    terminate, override_risk) now: what a page offers, before the service decides."""
    try:
        lifecycle.next_status(waiver.status, action)
    except IllegalTransition:
        return False
    rule = {
        "withdraw": require_requester,
        "edit": require_requester,
        "submit": require_requester,
        "terminate": require_terminator,
        "override_risk": require_reviewer,
    }[action]
    try:
        rule(waiver, by)
    except Denied:
        return False
    return True
