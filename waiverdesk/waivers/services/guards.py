"""What every write shares: finding and locking a waiver, the state table, refusals recorded."""

from __future__ import annotations

import functools
from datetime import date

from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk.audit import services as audit
from waiverdesk.core import lifecycle
from waiverdesk.core.errors import Denied
from waiverdesk.core.lifecycle import IN_FORCE, IllegalTransition, Status
from waiverdesk.core.policy import Policy
from waiverdesk.directory.services import roles_of
from waiverdesk.policies import services as policies

from ..models import Waiver


class NotFound(Exception):
    """No waiver with that reference."""


def refusals_audited(action: str):
    """Record every refusal of `action` in the audit trail, in its own transaction."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(reference: str, by: User, *args, **kwargs):
            try:
                return fn(reference, by, *args, **kwargs)
            except Denied as denied:
                record_refusal(action, denied, by, reference)
                raise

        return inner

    return wrap


def record_refusal(action: str, denied: Denied, by: User, reference: str) -> None:
    """The refusal in the audit trail, in its own transaction (one entry each: a person's
    refused actions are few; the doors count floods of their own refusals)."""
    said = {"attempted": action, "code": denied.code, "message": denied.message}
    with transaction.atomic():
        audit.append(by.username, "waiver.refused", None, said, object_type="waiver",
                     object_ref=reference)  # fmt: skip
    denied.audited = True


def with_parties(waivers):
    """Waivers with the people, customer and policy version that every view shows."""
    return waivers.select_related(
        "customer__account_owner", "requester", "control_owner", "policy_version"
    ).defer("policy_version__document")


def get(reference: str) -> Waiver:
    try:
        return with_parties(Waiver.objects).get(reference=reference)
    except Waiver.DoesNotExist:
        raise NotFound(reference) from None


def lock(reference: str) -> Waiver:
    """The waiver, its row locked until the transaction ends (its related rows are not)."""
    try:
        return with_parties(Waiver.objects.select_for_update(of=("self",))).get(reference=reference)
    except Waiver.DoesNotExist:
        raise NotFound(reference) from None


def transition(waiver: Waiver, action: str) -> Status:
    try:
        return lifecycle.next_status(waiver.status, action)
    except IllegalTransition as exc:
        raise Denied("invalid_state", str(exc)) from None


def policy_of(waiver: Waiver) -> Policy:
    """The policy version that routed (and decides) this waiver."""
    return policies.compiled(waiver.policy_version)


def require_requester(waiver: Waiver, by: User) -> None:
    if by.pk != waiver.requester_id and "admin" not in roles_of(by):
        raise Denied("not_requester", "only the requester may do this")


def stakeholders(waiver: Waiver, names=("requester", "control_owner", "account_owner")):
    """The people a waiver's news concerns, by the names the policy uses."""
    people = {
        "requester": waiver.requester,
        "control_owner": waiver.control_owner,
        "account_owner": waiver.customer.account_owner,
    }
    return [people[n] for n in names]


def require_predecessor_in_force(waiver: Waiver, today: date) -> None:
    old = waiver.predecessor
    if old.status not in IN_FORCE or old.end < today:
        raise Denied(
            "predecessor_ended",
            f"{old.reference} is {old.status} and ended {old.end}; a "
            f"{waiver.kind} must be approved while it is in force — start a new request",
        )
