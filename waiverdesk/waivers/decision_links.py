"""Deciding from the email: each approver's "waiting for your decision" email carries signed
links (approve, reject, request changes), each for one step, one person, one round and one
version of the request. A link opens a confirmation page (never a decision on a GET); it
works once, and not after the request has been routed again or changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing

from waiverdesk.core.errors import Denied

from . import intake
from .models import RouteStep, UsedDecisionLink, Waiver

SALT = "waiverdesk.decision-link"
DECISIONS = {"approve": "Approve", "reject": "Reject", "request_changes": "Request changes"}


@dataclass(frozen=True)
class Link:
    """What a link names: the request, its round and version, the step, the person and the
    decision; `digest` identifies the link (a used link is recorded by it)."""

    reference: str
    round: int
    version: str
    tier: str
    user_id: int
    decision: str
    digest: str


def version_of(waiver: Waiver) -> str:
    """A short hash of what is being decided: the request's fields and its evidence files."""
    files = sorted(a.sha256 for a in waiver.part("attachments"))
    text = json.dumps([intake.body_of(waiver, waiver.part("products")), files], sort_keys=True,
                      default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def make(waiver: Waiver, step: RouteStep, user: User, decision: str, version: str) -> str:
    """The signed token of one link (`version`: the request's `version_of`)."""
    fields = [waiver.reference, waiver.round, version, step.tier, user.pk, decision]
    return signing.dumps(fields, salt=SALT, compress=True)


def as_text(waiver: Waiver, step: RouteStep, user: User, version: str) -> str:
    """The part of `user`'s email with their decision links (`version`: `version_of`)."""
    lines = "".join(
        f"  {label}: {settings.BASE_URL}/decide/{make(waiver, step, user, decision, version)}/\n"
        for decision, label in DECISIONS.items()
    )
    return ("\nOr decide from here (each link asks you to confirm, and works once, for this\n"
            f"version of the request):\n{lines}")  # fmt: skip


def read(token: str) -> Link:
    """The link a token names, or Denied when it was not made here (or was altered)."""
    try:
        reference, round_, version, tier, user_id, decision = signing.loads(token, salt=SALT)
    except (signing.BadSignature, ValueError, TypeError):
        why = "it may have been cut short or altered; open the request from its page instead"
        raise Denied("link_invalid", f"this decision link is not valid: {why}") from None
    if decision not in DECISIONS:
        raise Denied("link_invalid", "this decision link is not valid")
    digest = hashlib.sha256(token.encode()).hexdigest()
    return Link(str(reference), int(round_), str(version), str(tier), int(user_id),
                str(decision), digest)  # fmt: skip


def problem(link: Link, waiver: Waiver, by: User) -> Denied | None:
    """Why the link cannot be used by `by` now, or None."""
    if by.pk != link.user_id:
        return Denied("link_not_yours", "this link was sent to someone else: sign in as the "
                      "person it was sent to, or decide from the request's page")  # fmt: skip
    if UsedDecisionLink.objects.filter(digest=link.digest).exists():
        return Denied("link_used", "this link has been used already; each works once")
    if waiver.round != link.round:
        return Denied("link_old_round", f"this link is for an earlier round of "
                      f"{waiver.reference}: it has been sent for approval again since "
                      f"(round {waiver.round})")  # fmt: skip
    if version_of(waiver) != link.version:
        return Denied("link_request_changed", f"{waiver.reference} has changed since this link "
                      "was sent: read the current version before you decide")  # fmt: skip
    return None


def require_current(link: Link, waiver: Waiver, by: User) -> None:
    if (refusal := problem(link, waiver, by)) is not None:
        raise refusal


def use(link: Link, now) -> None:
    UsedDecisionLink.objects.create(digest=link.digest, used_at=now)
