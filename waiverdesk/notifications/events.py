"""The events waiverdesk tells of, by email and webhook."""

from waiverdesk.core.errors import Invalid, Problem

# Every event, with the sentence its email opens with.
EVENTS = {
    "waiver.submitted": "was submitted for approval",
    "waiver.step_opened": "is waiting for a decision from you",
    "waiver.decided": "had a decision on one of its approval steps",
    "waiver.approved": "was approved",
    "waiver.rejected": "was rejected",
    "waiver.changes_requested": "was returned to its requester for changes",
    "waiver.edited": "was edited under review; the approvals given still count",
    "waiver.lapsed": "lapsed: nobody decided it in time",
    "step.overdue": "is past its time for a decision from you",
    "step.escalated": "waited too long for a decision and is escalated to you",
    "waiver.activated": "is now in force",
    "waiver.expiring": "ends soon",
    "waiver.expired": "has expired",
    "waiver.renewed": "has a renewal request",
    "waiver.terminated": "was ended early",
    "entitlement.granted": "took effect: its entitlement change is to be applied",
    "entitlement.reverted": "ended: its entitlement change is to be reverted",
    "waiver.flagged": "has a finding about its use (leakage or under-use)",
    "task.overdue": "has an implementation task past its due date",
    "condition.due": "has a condition that falls due soon",
    "condition.breached": "has a condition that is past its due date",
    "review.requested": "is to be re-attested by its control owner (governance review)",
    "review.overdue": "has a governance review past its due date",
    "review.escalated": "has a governance review overdue, escalated to compliance",
    "review.amend": "needs an amendment, says its governance review",
    "patterns.digest": "pattern findings for compliance and the policy owners",
    "report.published": "the leadership report of a period",
    "policy.published": "a new version of the exception policy took effect",
}


def require_known(events: list[str]) -> None:
    """Refuse (Invalid) any name that is not an event."""
    if unknown := sorted(set(events) - set(EVENTS)):
        message = f"no event {', '.join(unknown)}; known: {', '.join(EVENTS)}"
        raise Invalid([Problem("events", "unknown_event", message)])
