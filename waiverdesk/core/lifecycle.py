"""The lifecycle of a waiver, written once as data: every entry point obeys it."""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum


class WaiverStatus(StrEnum):  # the name clients generated from the API document see
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    ACTIVE = "active"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    TERMINATED = "terminated"
    SUPERSEDED = "superseded"  # replaced by an approved amendment
    LAPSED = "lapsed"  # nobody decided it in time


Status = S = WaiverStatus
UNDER_REVIEW = frozenset({S.SUBMITTED, S.IN_REVIEW})
OPEN = frozenset({S.DRAFT, S.CHANGES_REQUESTED, *UNDER_REVIEW})
IN_FORCE = frozenset({S.APPROVED, S.ACTIVE})
AWAITING = frozenset({*UNDER_REVIEW, S.CHANGES_REQUESTED})  # submitted and not yet decided

# action -> (the states it may start from, the state it leads to; None keeps the state)
TRANSITIONS: dict[str, tuple[frozenset[Status], Status | None]] = {
    "edit": (frozenset({S.DRAFT, S.CHANGES_REQUESTED}), None),
    "edit_under_review": (UNDER_REVIEW, S.SUBMITTED),  # resets the approvals
    "submit": (frozenset({S.DRAFT, S.CHANGES_REQUESTED}), S.SUBMITTED),
    "override_risk": (UNDER_REVIEW, S.SUBMITTED),  # re-routes, so approvals restart
    "approve_step": (UNDER_REVIEW, S.IN_REVIEW),
    "approve_final": (UNDER_REVIEW, S.APPROVED),
    "reject": (UNDER_REVIEW, S.REJECTED),
    "request_changes": (UNDER_REVIEW, S.CHANGES_REQUESTED),
    "withdraw": (OPEN, S.WITHDRAWN),
    "attach": (OPEN, None),
    # a decision by someone conflicted at that moment (a new account owner) no longer counts
    "void_approval": (UNDER_REVIEW, S.SUBMITTED),
    "lapse": (AWAITING, S.LAPSED),
    "activate": (frozenset({S.APPROVED}), S.ACTIVE),
    "expire": (IN_FORCE, S.EXPIRED),
    "terminate": (IN_FORCE, S.TERMINATED),
    "supersede": (IN_FORCE, S.SUPERSEDED),
    "renew": (IN_FORCE, None),  # creates a linked request; this one is unchanged
    "amend": (IN_FORCE, None),
}

TERMINAL = frozenset({S.REJECTED, S.WITHDRAWN, S.EXPIRED, S.TERMINATED, S.SUPERSEDED, S.LAPSED})


class IllegalTransition(Exception):
    """An action that the state table does not allow from the current state."""

    def __init__(self, action: str, status: str):
        self.action, self.status = action, status
        super().__init__(f"cannot {action.replace('_', ' ')} a waiver that is {status}")


def next_status(status: str, action: str) -> Status:
    """The state `action` leads to from `status`, or IllegalTransition."""
    sources, target = TRANSITIONS[action]
    if Status(status) not in sources:
        raise IllegalTransition(action, status)
    return target or Status(status)


def allowed_actions(status: str) -> list[str]:
    """The actions the state table allows from `status`."""
    return [a for a, (sources, _) in TRANSITIONS.items() if Status(status) in sources]


def due_clock_action(
    status: str, start: date, end: date, today: date, lapse_after_days: int | None = None
) -> str | None:
    """What the passing of time does to a waiver today: activate, expire, lapse (a request
    nobody decided by its end date, or `lapse_after_days` after its start), or nothing."""
    if status in IN_FORCE and today > end:
        return "expire"
    if status == S.APPROVED and today >= start:
        return "activate"
    lapses_on = start + timedelta(lapse_after_days) if lapse_after_days is not None else None
    if status in AWAITING and (today > end or (lapses_on is not None and today >= lapses_on)):
        return "lapse"
    return None


def reminder_dates(end: date, days_before_end: list[int]) -> list[date]:
    """The days on which sunset reminders go out, earliest first."""
    return sorted(end - timedelta(days=d) for d in set(days_before_end))
