"""Filing a request: creating, editing, submitting and attaching evidence."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from django.contrib.auth.models import User
from django.db import connection
from django.db.models.expressions import RawSQL

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import UNDER_REVIEW, Status
from waiverdesk.directory.services import roles_of
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies

from .. import attachments, intake
from ..models import Attachment, ReferenceCounter, RouteStep, Waiver
from .evaluating import (
    evaluate_waiver,
    policy_failures_reported,
    price,
    read_with_policy,
    store_evaluation,
)
from .guards import (
    lock,
    policy_of,
    record_refusal,
    refusals_audited,
    require_requester,
    transition,
)
from .routing import material_change, start_round, tell_approvers, tell_kept
from .separation import require_fit_control_owner


def next_reference(year: int) -> str:
    """Allocate `WVR-<year>-<5 digits>` in one statement: concurrent creates never clash, and
    on PostgreSQL they do not wait for each other (see ReferenceCounter)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT waiver_reference_number(%s)", [year])
        else:
            cursor.execute(
                "INSERT INTO waivers_referencecounter (year, last) VALUES (%s, 1) "
                "ON CONFLICT (year) DO UPDATE SET last = waivers_referencecounter.last + 1 "
                "RETURNING last",
                [year],
            )
        (number,) = cursor.fetchone()
    return f"WVR-{year}-{number:05d}"


def prepare_references(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """On PostgreSQL, count the year's references from the sequence, in a transaction of its
    own: otherwise the year's first request does it in its transaction, and the requests of
    that moment wait for its commit. A job of the worker (from its first tick of a year on);
    it says nothing, as it changes nothing anyone sees."""
    if connection.vendor == "postgresql" and not dry_run:
        ReferenceCounter.objects.get_or_create(year=now.year)
        ReferenceCounter.objects.filter(year=now.year, base=None).update(
            base=RawSQL("nextval('waivers_reference')", [])
        )
    return []


@dataclass(frozen=True)
class Upload:
    """A file of evidence sent with a new request."""

    kind: str
    filename: str
    content: bytes | BinaryIO  # a file is read in chunks
    content_type: str


@policy_failures_reported
def create(
    data: dict[str, Any],
    by: User,
    now: datetime | None = None,
    uploads: list[Upload] | tuple[Upload, ...] = (),
) -> Waiver:
    """Create a draft from a request body and its evidence files; with `"submit": true` it is
    submitted at once."""
    now = now or clock.now()
    version = policies.active_version()
    resolved = read_with_policy(data, now, version)
    stored: list[tuple[str, attachments.Stored]] = []
    try:
        require_initiator(resolved.body.type, by, version)
        stored = _store_uploads(uploads)
        with audit.atomic():
            return create_draft(
                resolved, by, now, version=version, submit=resolved.body.submit, uploads=stored
            )
    except BaseException as failure:
        for _kind, file in stored:
            attachments.discard(file)
        if isinstance(failure, Denied):
            record_refusal("create", failure, by, "")
        raise


def _store_uploads(uploads) -> list[tuple[str, attachments.Stored]]:
    """Check and write every file, or none: each problem is named by its evidence kind."""
    stored, problems = [], []
    for upload in uploads:
        field = f"evidence.{upload.kind}"
        if not _KIND.match(upload.kind or ""):
            problems.append(Problem(field, "invalid", "name the evidence, e.g. usage_forecast"))
            continue
        try:
            stored.append(
                (
                    upload.kind,
                    attachments.store(upload.filename, upload.content, upload.content_type),
                )
            )
        except Invalid as invalid:
            problems += [Problem(field, p.code, p.message) for p in invalid.problems]
    if problems:
        for _kind, file in stored:
            attachments.discard(file)
        raise Invalid(problems)
    return stored


def create_draft(
    resolved: intake.Resolved,
    by: User,
    now: datetime,
    predecessor: Waiver | None = None,
    kind: str = Waiver.Kind.NEW,
    version=None,
    submit: bool = False,
    uploads: list[tuple[str, attachments.Stored]] = (),
) -> Waiver:
    """Store a new draft with its evidence (and, with `submit`, submit it: one evaluation
    serves both)."""
    version = version or policies.active_version()
    waiver = Waiver(
        kind=kind,
        status=Status.DRAFT,
        policy_version=version,
        requester=by,
        predecessor=predecessor,
        renewal_count=(predecessor.renewal_count + (kind == Waiver.Kind.RENEWAL))
        if predecessor
        else 0,
        created_at=now,
        updated_at=now,
        **resolved.fields(),
    )
    policy = policies.compiled(version)
    price(waiver, policy, now.date())
    kinds = frozenset(k for k, _ in uploads)
    evaluation = evaluate_waiver(waiver, policy, now, resolved.products, kinds)
    require_fit_control_owner(waiver, evaluation.route)
    store_evaluation(waiver, evaluation)
    waiver.reference = next_reference(now.year)  # taken last: a refused request takes none
    waiver.index_for_search(resolved.products)
    waiver.save()
    Waiver.products.through.objects.bulk_create(
        Waiver.products.through(waiver=waiver, product=p) for p in resolved.products
    )
    known = waiver.in_hand
    known.products, known.attachments, known.conditions, known.tasks = resolved.products, [], [], []
    audit.append(
        by.username,
        "waiver.created",
        waiver,
        {
            "from": None,
            "to": Status.DRAFT,
            "kind": kind,
            "type": waiver.type,
            "customer": waiver.customer.external_id,
            "predecessor": predecessor.reference if predecessor else None,
            "body": intake.body_of(waiver, resolved.products),
        },
        at=now,
    )
    for evidence_kind, file in uploads:
        _record_attachment(waiver, evidence_kind, file, by, now)
    if submit:
        _submit(waiver, by, now, version, evaluation)
    return waiver


def require_initiator(type_name: str, by: User, version=None) -> None:
    policy = policies.compiled(version or policies.active_version())
    exception_type = policy.types.get(type_name)
    if exception_type is None:
        known = ", ".join(sorted(policy.types))
        raise Invalid(
            [Problem("type", "unknown_type", f"'{type_name}' is not a type; use {known}")]
        )
    if not _may_start(exception_type, by):
        raise Denied(
            "not_initiator",
            f"a {type_name} request may be started by {', '.join(exception_type.initiators)} only",
        )


def _may_start(exception_type, by: User) -> bool:
    return bool(roles_of(by) & (set(exception_type.initiators) | {"admin"}))


def startable_types(by: User) -> list[tuple[str, Any]]:
    """The exception types of the active policy that `by` may start, in the policy's order."""
    policy = policies.compiled(policies.active_version())
    return [(name, t) for name, t in policy.document.types.items() if _may_start(t, by)]


@policy_failures_reported
@refusals_audited("edit")
def edit(
    reference: str,
    by: User,
    changes: dict[str, Any],
    now: datetime | None = None,
    uploads: list[Upload] | tuple[Upload, ...] = (),
) -> Waiver:
    """Change a request's fields and add evidence files; under review this starts the
    approvals again. With `"submit": true` a draft is submitted in the same transaction."""
    now = now or clock.now()
    stored = _store_uploads(uploads)
    try:
        with audit.atomic():
            waiver = lock(reference)
            under_review = waiver.status in UNDER_REVIEW
            transition(waiver, "edit_under_review" if under_review else "edit")
            require_requester(waiver, by)
            _change(waiver, by, changes, under_review, now, evidence=stored)
            if changes.get("submit") and not under_review:
                _submit(waiver, by, now)
    except BaseException:
        for _kind, file in stored:
            attachments.discard(file)
        raise
    return waiver


def _change(
    waiver: Waiver, by: User, changes: dict, under_review: bool, now: datetime, evidence=()
) -> list[Attachment]:
    """Apply `changes` and add `evidence` (stored files, by kind); under review, a material
    change (see `routing.material_change`) starts a new round, any other keeps the approvals given.
    Whoever changes it may not decide that round."""
    target = transition(waiver, "edit_under_review" if under_review else "edit")
    before = intake.body_of(waiver)
    body = intake.merge(before, {k: v for k, v in changes.items() if k != "submit"})
    resolved = intake.read(body)
    if resolved.body.type != waiver.type:
        require_initiator(resolved.body.type, by)
    for name, value in resolved.fields().items():
        setattr(waiver, name, value)
    waiver.products.set(resolved.products)
    waiver.in_hand.products = list(resolved.products)
    added = [_record_attachment(waiver, kind, file, by, now) for kind, file in evidence]
    after = intake.body_of(waiver)
    changed = sorted(k for k in after if after[k] != before[k])
    if not changed and not added:
        return added
    previous = waiver.status
    material = material_change(waiver, before, after, added, now) if under_review else []
    if material:
        start_round(waiver, now)
        for step in waiver.current_route().filter(status=RouteStep.State.PENDING):
            tell_approvers(waiver, step, now)  # the new round's links
    elif under_review:  # the approvals given still count; the round goes on
        target = waiver.status
    else:
        policy = policy_of(waiver)
        price(waiver, policy, now.date())
        evaluation = evaluate_waiver(waiver, policy, now)
        require_fit_control_owner(waiver, evaluation.route)
        store_evaluation(waiver, evaluation)
    # The round this edit shapes: the new one under review, else the next submission's.
    waiver.editors = {**waiver.editors, str(by.pk): waiver.round + (not under_review)}
    waiver.status, waiver.updated_at = target, now
    waiver.index_for_search(resolved.products)
    waiver.save()
    audit.append(
        by.username,
        "waiver.edited",
        waiver,
        {
            "from": previous,
            "to": target,
            "changed": {k: [before[k], after[k]] for k in changed},
            "evidence_added": [a.kind for a in added],
            "approvals_reset": bool(material),
            **({"material": material} if under_review else {}),
        },
        at=now,
    )
    if under_review and not material:
        tell_kept(waiver, changed + [f"evidence {a.kind}" for a in added], now)
    return added


@policy_failures_reported
@refusals_audited("submit")
def submit(reference: str, by: User, now: datetime | None = None) -> Waiver:
    """Submit a draft (or a request returned for changes) for approval."""
    now = now or clock.now()
    with audit.atomic():
        waiver = lock(reference)
        require_requester(waiver, by)
        _submit(waiver, by, now)
    return waiver


def _submit(waiver: Waiver, by: User, now: datetime, version=None, evaluation=None) -> None:
    previous = waiver.status
    target = transition(waiver, "submit")
    evaluation = start_round(waiver, now, version, evaluation)
    waiver.status, waiver.submitted_at, waiver.updated_at = target, now, now
    waiver.save()
    audit.append(
        by.username,
        "waiver.submitted",
        waiver,
        {
            "from": previous,
            "to": target,
            "round": waiver.round,
            "policy_version": waiver.policy_version.number,
            "risk": waiver.risk,
            "route": [s.tier for s in evaluation.route],
            "triggers": [t.name for t in evaluation.triggers],
        },
        at=now,
    )
    route = [s.tier for s in evaluation.route]
    notify.publish("waiver.submitted", waiver, {"route": route}, [waiver.requester], now)
    for step in waiver.in_hand.steps:
        if step.status == RouteStep.State.PENDING:
            tell_approvers(waiver, step, now)


_KIND = re.compile(intake.EVIDENCE_KIND)


@policy_failures_reported
@refusals_audited("attach")
def attach(
    reference: str,
    by: User,
    filename: str,
    content: bytes | BinaryIO,
    content_type: str,
    kind: str,
    now: datetime | None = None,
) -> Attachment:
    """Store a file of evidence with a request that is still open; under review, new evidence
    starts a new round, as any other change does."""
    now = now or clock.now()
    if not _KIND.match(kind or ""):
        raise Invalid([Problem("kind", "invalid", "name the evidence, e.g. usage_forecast")])
    stored = attachments.store(filename, content, content_type)  # raises Invalid
    try:
        with audit.atomic():
            waiver = lock(reference)
            transition(waiver, "attach")
            require_requester(waiver, by)
            under_review = waiver.status in UNDER_REVIEW
            (attachment,) = _change(waiver, by, {}, under_review, now, [(kind, stored)])
    except BaseException:
        attachments.discard(stored)
        raise
    return attachment


def _record_attachment(
    waiver: Waiver, kind: str, stored: attachments.Stored, by: User, now: datetime
) -> Attachment:
    attachments.keep(stored)
    attachment = Attachment.objects.create(
        waiver=waiver,
        kind=kind,
        filename=stored.filename,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        uploaded_by=by,
        uploaded_at=now,
    )
    if waiver.in_hand.attachments is not None:
        waiver.in_hand.attachments.append(attachment)
    audit.append(
        by.username,
        "waiver.attached",
        waiver,
        {"kind": kind, "filename": stored.filename, "sha256": stored.sha256, "size": stored.size},
        at=now,
    )
    return attachment
