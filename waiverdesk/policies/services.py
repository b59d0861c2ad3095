"""Publishing policy versions and loading the compiled policy of any version."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core import explain
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.policy import Policy, PolicyError, load_policy

from .models import PolicyVersion


class NoActivePolicy(Exception):
    """No policy has been published yet."""

    def __str__(self) -> str:
        return "no policy is published yet: run `waiverdesk policy publish FILE`"


# Keyed by digest: a version's text never changes, so it is compiled once per process.
_compiled: dict[str, Policy] = {}


def compiled(version: PolicyVersion) -> Policy:
    """The validated, compiled policy of `version` (its text is read only on the first call)."""
    policy = _compiled.get(version.sha256)
    if policy is None:
        policy = _compiled[version.sha256] = load_policy(version.document)
    return policy


def active_version() -> PolicyVersion:
    version = PolicyVersion.objects.filter(is_active=True).defer("document").first()
    if version is None:
        raise NoActivePolicy()
    return version


POLICY_OWNERS = {"policy_admin", "admin"}


def _require_policy_owner(by: User, what: str) -> None:
    from waiverdesk.directory.services import require_role  # it reads the active policy

    require_role(by, POLICY_OWNERS, what)


def publish(document: str, by=None, note: str = "") -> PolicyVersion:
    """Validate `document` and propose it; a second policy admin's approval makes it the
    active version. In a sandbox, and for the first version of an empty workspace, it takes
    effect at once. Earlier versions stay as they were."""
    known = _compiled.get(hashlib.sha256(document.encode()).hexdigest())
    policy = known or load_policy(document)  # raises PolicyError naming every problem
    _compiled.setdefault(policy.digest, policy)
    if by is not None:
        _require_policy_owner(by, "publish the policy")
    now = clock.now()
    with transaction.atomic():
        current = PolicyVersion.objects.select_for_update().filter(is_active=True).first()
        if current is not None and current.sha256 == policy.digest:
            raise PolicyError([f"document: identical to the active version v{current.number}"])
        number = (PolicyVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                version = PolicyVersion.objects.create(
                    number=number,
                    document=document,
                    sha256=policy.digest,
                    name=policy.document.name,
                    state=PolicyVersion.State.PROPOSED,
                    proposed_at=now,
                    proposed_by=by,
                    note=note,
                )
        except IntegrityError:
            raise PolicyError(["document: another version was proposed at the same time"]) from None
        audit.append(
            by.username if by else "system",
            "policy.proposed",
            version,
            {"number": number, "sha256": policy.digest, "note": note},
            at=now,
        )
        if current is None or settings.SANDBOX:
            _activate(version, current, by, now)
    return version


def approve(number: int, by: User) -> PolicyVersion:
    """A second policy admin, not the proposer, puts a proposed version into force."""
    _require_policy_owner(by, "approve a policy version")
    now = clock.now()
    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().filter(number=number).first()
        if version is None or version.state != PolicyVersion.State.PROPOSED:
            raise Invalid([Problem("version", "not_proposed", f"v{number} is not a proposal")])
        if version.proposed_by_id == by.pk:  # the refusal is recorded; nothing else changes
            refused = Denied(
                "four_eyes", "you proposed this version; a second policy admin must approve it"
            )
            audit.append(by.username, "policy.refused", version,
                         {"attempted": "approve", "code": refused.code}, at=now)  # fmt: skip
            refused.audited = True
        else:
            current = PolicyVersion.objects.select_for_update().filter(is_active=True).first()
            if current is not None and current.sha256 == version.sha256:
                raise Invalid(
                    [Problem("version", "identical", f"identical to the active v{current.number}")]
                )
            _activate(version, current, by, now)
            return version
    raise refused


def _activate(version: PolicyVersion, current: PolicyVersion | None, by, now) -> None:
    version.changes = (
        explain.changes(compiled(current).document, compiled(version).document) if current else []
    )
    PolicyVersion.objects.filter(is_active=True).update(is_active=False)
    version.state, version.is_active = PolicyVersion.State.PUBLISHED, True
    version.published_at, version.published_by = now, by
    version.save()
    audit.append(
        by.username if by else "system",
        "policy.published",
        version,
        {
            "number": version.number,
            "sha256": version.sha256,
            "previous": current.number if current else None,
            "proposed_by": version.proposed_by.username if version.proposed_by else None,
            "note": version.note,
        },
        at=now,
    )
    if current is not None:
        announce(version)


def report_failure(digest: str, place: str, detail: str) -> None:
    """Record, and tell the policy admins, that the version with `digest` failed at `place`
    on a request: once per version and place."""
    from waiverdesk.notifications import services as notify

    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().filter(sha256=digest).first()
        if version is None:
            return
        known = AuditEntry.objects.filter(
            action="policy.failed", object_ref=version.audit_ref
        ).values_list("payload", flat=True)
        if any(json.loads(payload).get("place") == place for payload in known):
            return
        now = clock.now()
        admins = User.objects.filter(groups__name="policy_admin", is_active=True)
        body = (
            f"The condition {place} of policy v{version.number} failed on a request: {detail}.\n"
            "The request was refused and nothing was saved. Correct the condition and publish "
            f"a new version: {settings.BASE_URL}/policy/replay/\n-- waiverdesk\n"
        )
        for person in notify.readers(admins, "policy.failed"):
            notify.queue_email(person.email, f"Policy v{version.number} failed at {place}", body,
                               "policy.failed", now, object_ref=version.audit_ref)  # fmt: skip
        audit.append("system", "policy.failed", version, {"place": place, "detail": detail}, at=now)


def announce(version: PolicyVersion) -> None:
    """Tell everyone who has not muted policy news what the new version changed (K2)."""
    from waiverdesk.notifications import services as notify

    lines = "\n".join(f"- {line}" for line in version.changes) or "- only its wording"
    body = (
        f"Version {version.number} of the exception policy ({version.name}) is in force "
        f"from {version.published_at:%Y-%m-%d %H:%M} UTC.\n"
        + (f"\n{version.note}\n" if version.note else "")
        + f"\nWhat changed:\n{lines}\n\nRead it, in plain language: {settings.BASE_URL}/policy/"
        "\n-- waiverdesk\n"
    )
    for person in notify.readers(User.objects.filter(is_active=True), "policy.published"):
        notify.queue_email(person.email, f"Policy v{version.number}: what changed", body,
                           "policy.published", version.published_at)  # fmt: skip
