"""Publishing policy versions and loading the compiled policy of any version."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import explain
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


def publish(document: str, by=None, note: str = "") -> PolicyVersion:
    """Validate `document` and make it the active version; earlier versions stay as they were."""
    policy = load_policy(document)  # raises PolicyError naming every problem
    with transaction.atomic():
        current = PolicyVersion.objects.select_for_update().filter(is_active=True).first()
        if current is not None and current.sha256 == policy.digest:
            raise PolicyError([f"document: identical to the active version v{current.number}"])
        number = (PolicyVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1
        changed = explain.changes(compiled(current).document, policy.document) if current else []
        PolicyVersion.objects.filter(is_active=True).update(is_active=False)
        try:
            with transaction.atomic():
                version = PolicyVersion.objects.create(
                    number=number,
                    document=document,
                    sha256=policy.digest,
                    name=policy.document.name,
                    published_at=clock.now(),
                    published_by=by,
                    is_active=True,
                    note=note,
                    changes=changed,
                )
        except IntegrityError:
            raise PolicyError(
                ["document: another version was published at the same time"]
            ) from None
        audit.append(
            by.username if by else "system",
            "policy.published",
            version,
            {
                "number": number,
                "sha256": policy.digest,
                "previous": current.number if current else None,
                "note": note,
            },
        )
        if current is not None:
            announce(version)
    return version


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
