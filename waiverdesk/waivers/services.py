"""The write path of a waiver.

Every function here is one transaction: it locks the waiver row (or updates
it conditionally), applies the rules of the pure core, and appends the audit
entry last. Views, API endpoints, commands and jobs only call these.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import lifecycle
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.evaluation import Evaluation, Override, ProductFacts, RequestFacts, evaluate
from waiverdesk.core.lifecycle import IN_FORCE, OPEN, UNDER_REVIEW, IllegalTransition, Status
from waiverdesk.core.policy import DIMENSIONS, Policy
from waiverdesk.directory.services import roles_of
from waiverdesk.entitlements import services as entitlements
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies

from . import attachments, intake
from .models import Approval, Attachment, Condition, RouteStep, Task, Waiver


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
                _record_refusal(action, denied, by, reference)
                raise

        return inner

    return wrap


def _record_refusal(action: str, denied: Denied, by: User, reference: str) -> None:
    with transaction.atomic():
        audit.append(
            by.username,
            "waiver.refused",
            None,
            {"attempted": action, "code": denied.code, "message": denied.message},
            object_type="waiver",
            object_ref=reference,
        )


# -- reading ----------------------------------------------------------------


def _with_parties(waivers):
    """Waivers with the people, customer and policy version that every view shows."""
    return waivers.select_related(
        "customer__account_owner", "requester", "control_owner", "policy_version"
    ).defer("policy_version__document")


def get(reference: str) -> Waiver:
    try:
        return _with_parties(Waiver.objects).get(reference=reference)
    except Waiver.DoesNotExist:
        raise NotFound(reference) from None


def policy_of(waiver: Waiver) -> Policy:
    """The policy version that routed (and decides) this waiver."""
    return policies.compiled(waiver.policy_version)


def facts(
    waiver: Waiver, now: datetime, products: list | None = None, kinds: frozenset[str] = frozenset()
) -> RequestFacts:
    """The facts the policy sees for `waiver`; an unsaved one names its `products` and the
    `kinds` of evidence it comes with."""
    if products is None:
        products = list(waiver.products.all())
    since = now - timedelta(days=365)
    history = waiver.customer.waivers.filter(submitted_at__gte=since).exclude(
        status=Status.WITHDRAWN
    )
    if waiver.pk:
        history = history.exclude(pk=waiver.pk)
        kinds = frozenset(waiver.attachments.values_list("kind", flat=True))
    return facts_of(waiver, products, kinds, history.count())


def facts_of(waiver: Waiver, products, kinds: frozenset[str], history: int) -> RequestFacts:
    """The facts of `waiver` with its products, evidence kinds and the count of its
    customer's other exceptions in the year, read elsewhere."""
    customer, owner = waiver.customer, waiver.control_owner
    return RequestFacts(
        type=waiver.type,
        customer=customer.external_id,
        products=tuple(ProductFacts(p.code, p.family, p.risk_class) for p in products),
        license_type=waiver.license_type,
        region=waiver.region,
        start=waiver.start,
        end=waiver.end,
        scope=waiver.scope,
        financials=waiver.financials,
        justification=waiver.justification,
        evidence=waiver.evidence,
        attachment_kinds=kinds,
        outcomes=tuple(waiver.outcomes),
        control_owner=owner.username if owner else "",
        account_owner=customer.account_owner.username if customer.account_owner else "",
        renewal_count=waiver.renewal_count,
        customer_exceptions_last_365_days=history,
        kind=waiver.kind,
    )


def evaluate_waiver(
    waiver: Waiver, policy: Policy, now: datetime, products=None, kinds=frozenset()
) -> Evaluation:
    """Evaluate a waiver (saved, or unsaved with its `products` and evidence `kinds`) with its
    risk overrides."""
    return evaluate(policy, facts(waiver, now, products, kinds), now.date(), overrides_of(waiver))


def overrides_of(waiver: Waiver) -> dict[str, Override]:
    """The reviewers' risk overrides of a waiver, as the evaluation takes them."""
    return {
        d: Override(o["score"], o["rationale"], o["by"]) for d, o in waiver.risk_overrides.items()
    }


@dataclass
class Simulation:
    policy_version: int
    evaluation: Evaluation


def simulate(
    data: dict[str, Any], now: datetime | None = None, kinds: frozenset[str] = frozenset()
) -> Simulation:
    """Evaluate a request body (with evidence files of `kinds`) against the active policy
    without saving anything."""
    resolved = intake.read(data)
    version = policies.active_version()
    unsaved = Waiver(**resolved.fields())
    evaluation = evaluate_waiver(
        unsaved, policies.compiled(version), now or clock.now(), resolved.products, kinds
    )
    return Simulation(version.number, evaluation)


# -- creating -----------------------------------------------------------------


def next_reference(year: int) -> str:
    """Allocate `WVR-<year>-<5 digits>` in one statement: concurrent creates never clash."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO waivers_referencecounter (year, last) VALUES (%s, 1) "
            "ON CONFLICT (year) DO UPDATE SET last = waivers_referencecounter.last + 1 "
            "RETURNING last",
            [year],
        )
        (number,) = cursor.fetchone()
    return f"WVR-{year}-{number:05d}"


@dataclass(frozen=True)
class Upload:
    """A file of evidence sent with a new request."""

    kind: str
    filename: str
    content: bytes
    content_type: str


def create(
    data: dict[str, Any],
    by: User,
    now: datetime | None = None,
    uploads: list[Upload] | tuple[Upload, ...] = (),
) -> Waiver:
    """Create a draft from a request body and its evidence files; with `"submit": true` it is
    submitted at once."""
    now = now or clock.now()
    resolved = intake.read(data)
    version = policies.active_version()
    try:
        _require_initiator(resolved.body.type, by, version)
    except Denied as denied:
        _record_refusal("create", denied, by, "")
        raise
    stored = _store_uploads(uploads)
    try:
        with transaction.atomic():
            waiver = _create(
                resolved, by, now, version=version, submit=resolved.body.submit, uploads=stored
            )
    except BaseException:
        for _kind, file in stored:
            attachments.discard_unless_used(file.sha256)
        raise
    return waiver


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
            attachments.discard_unless_used(file.sha256)
        raise Invalid(problems)
    return stored


def _create(
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
        reference=next_reference(now.year),
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
    evaluation = evaluate_waiver(
        waiver, policies.compiled(version), now, resolved.products, frozenset(k for k, _ in uploads)
    )
    _store_evaluation(waiver, evaluation)
    waiver.save()
    Waiver.products.through.objects.bulk_create(
        Waiver.products.through(waiver=waiver, product=p) for p in resolved.products
    )
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


def _require_initiator(type_name: str, by: User, version=None) -> None:
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


# -- changing a request ---------------------------------------------------------


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
        with transaction.atomic():
            waiver = _lock(reference)
            under_review = waiver.status in UNDER_REVIEW
            _next(waiver, "edit_under_review" if under_review else "edit")
            _require_requester(waiver, by)
            for evidence_kind, file in stored:
                _record_attachment(waiver, evidence_kind, file, by, now)
            _change(waiver, by, changes, under_review, now)
            if changes.get("submit") and not under_review:
                _submit(waiver, by, now)
    except BaseException:
        for _kind, file in stored:
            attachments.discard_unless_used(file.sha256)
        raise
    return waiver


def _change(waiver: Waiver, by: User, changes: dict, under_review: bool, now: datetime) -> None:
    target = _next(waiver, "edit_under_review" if under_review else "edit")
    before = intake.body_of(waiver)
    body = intake.merge(before, {k: v for k, v in changes.items() if k != "submit"})
    resolved = intake.read(body)
    if resolved.body.type != waiver.type:
        _require_initiator(resolved.body.type, by)
    for name, value in resolved.fields().items():
        setattr(waiver, name, value)
    waiver.products.set(resolved.products)
    after = intake.body_of(waiver)
    changed = sorted(k for k in after if after[k] != before[k])
    if not changed:
        return
    previous = waiver.status
    if under_review:
        _start_round(waiver, now)
    else:
        _store_evaluation(waiver, evaluate_waiver(waiver, policy_of(waiver), now))
    waiver.status, waiver.updated_at = target, now
    waiver.save()
    audit.append(
        by.username,
        "waiver.edited",
        waiver,
        {
            "from": previous,
            "to": target,
            "changed": {k: [before[k], after[k]] for k in changed},
            "approvals_reset": under_review,
        },
        at=now,
    )


@refusals_audited("submit")
def submit(reference: str, by: User, now: datetime | None = None) -> Waiver:
    """Submit a draft (or a request returned for changes) for approval."""
    now = now or clock.now()
    with transaction.atomic():
        waiver = _lock(reference)
        _require_requester(waiver, by)
        _submit(waiver, by, now)
    return waiver


def _submit(waiver: Waiver, by: User, now: datetime, version=None, evaluation=None) -> None:
    previous = waiver.status
    target = _next(waiver, "submit")
    evaluation = _start_round(waiver, now, version, evaluation)
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
    first = evaluation.route[0]
    _tell_approvers(waiver, first.role, first.tier, now)


def _start_round(
    waiver: Waiver, now: datetime, version=None, evaluation: Evaluation | None = None
) -> Evaluation:
    """Route the request afresh under the active policy; earlier approvals no longer count.

    `evaluation` is the waiver's evaluation under `version` when the caller has just made it.
    """
    version = version or policies.active_version()
    policy = policies.compiled(version)
    evaluation = evaluation or evaluate_waiver(waiver, policy, now)
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
        _require_predecessor_in_force(waiver, now.date())
    waiver.policy_version = version
    waiver.round += 1
    waiver.checks = {}
    _store_evaluation(waiver, evaluation)
    RouteStep.objects.bulk_create(
        RouteStep(
            waiver=waiver,
            round=waiver.round,
            position=i,
            tier=step.tier,
            role=step.role,
            required=step.required,
            reasons=list(step.reasons),
            sla_hours=policy.tier(step.tier).sla_hours,
            status=RouteStep.State.PENDING if i == 0 else RouteStep.State.WAITING,
            opened_at=now if i == 0 else None,
        )
        for i, step in enumerate(evaluation.route)
    )
    return evaluation


def _store_evaluation(waiver: Waiver, evaluation: Evaluation) -> None:
    waiver.risk = {
        **evaluation.risk.as_dict(),
        "rules": {d: s.rule for d, s in evaluation.risk.scores.items()},
    }
    waiver.triggers = [
        {"name": t.name, "flag": t.flag, "add_tiers": list(t.add_tiers)}
        for t in evaluation.triggers
    ]


@refusals_audited("withdraw")
def withdraw(reference: str, by: User, reason: str = "", now: datetime | None = None) -> Waiver:
    """The requester takes back a request that is not yet decided."""
    return _end(reference, by, "withdraw", reason, now, _require_requester)


@refusals_audited("terminate")
def terminate(reference: str, by: User, reason: str, now: datetime | None = None) -> Waiver:
    """End an approved or active exception early, by someone the policy allows."""
    if not reason.strip():
        raise Invalid([Problem("reason", "required", "say why the exception ends early")])
    return _end(reference, by, "terminate", reason, now, _require_terminator)


def _end(reference, by, action, reason, now, authorize) -> Waiver:
    now = now or clock.now()
    with transaction.atomic():
        waiver = _lock(reference)
        target = _next(waiver, action)
        authorize(waiver, by)
        previous = waiver.status
        waiver.status, waiver.ended_reason, waiver.updated_at = target, reason, now
        waiver.save()
        audit.append(
            by.username,
            f"waiver.{target}",
            waiver,
            {"from": previous, "to": target, "reason": reason},
            at=now,
        )
        if target == Status.TERMINATED:
            _create_revert_tasks([waiver], now)
            entitlements.revert([waiver], now)
            notify.publish(
                "waiver.terminated", waiver, {"reason": reason}, _stakeholders(waiver), now
            )
    return waiver


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
    with transaction.atomic():
        waiver = _lock(reference)
        target = _next(waiver, "override_risk")
        _require_reviewer(waiver, by)
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
        _start_round(waiver, now)
        waiver.status, waiver.updated_at = target, now
        waiver.save()
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


# -- deciding -------------------------------------------------------------------


@refusals_audited("decide")
def decide(
    reference: str,
    by: User,
    decision: str,
    comment: str = "",
    conditions: list[dict[str, Any]] | None = None,
    checks: list[str] | None = None,
    now: datetime | None = None,
) -> Approval:
    """Approve, reject or request changes on the step the caller may act on."""
    now = now or clock.now()
    if decision not in Approval.Decision.values:
        raise Invalid(
            [Problem("decision", "invalid", "must be approve, reject or request_changes")]
        )
    if decision != "approve" and not comment.strip():
        raise Invalid([Problem("comment", "required", "say why, so the requester can act on it")])
    with transaction.atomic():
        waiver = _lock(reference)
        _next(waiver, "approve_step" if decision == "approve" else decision)  # the state table
        route = list(waiver.current_route())
        step = next((s for s in route if s.status == RouteStep.State.PENDING), None)
        policy = policy_of(waiver)
        _require_may_act(waiver, step, by, policy)
        new_conditions = _read_conditions(conditions or [], now.date())
        given = step.approvals.filter(decision="approve").count() + (decision == "approve")
        step_done = decision == "approve" and given >= step.required
        later = next((s for s in route if s.position > step.position), None)
        if decision == "approve":
            action = "approve_final" if step_done and later is None else "approve_step"
            _tick_checks(waiver, policy, checks or [], by, now, final=action == "approve_final")
        else:
            action = decision  # reject | request_changes
        if action == "approve_final" and waiver.kind != Waiver.Kind.NEW:
            _require_predecessor_in_force(waiver, now.date())
        previous, target = waiver.status, _next(waiver, action)
        approval = Approval.objects.create(
            step=step,
            waiver=waiver,
            round=waiver.round,
            user=by,
            decision=decision,
            comment=comment,
            at=now,
        )
        for c in new_conditions:
            Condition.objects.create(
                waiver=waiver,
                approval=approval,
                text=c.text,
                owner=c.owner,
                due=c.due,
                created_at=now,
            )
        if decision != "approve" or step_done:
            step.status = {"approve": "approved", "reject": "rejected"}.get(decision, "returned")
            step.closed_at = now
            step.save(update_fields=["status", "closed_at"])
        if step_done and later is not None:
            RouteStep.objects.filter(pk=later.pk).update(
                status=RouteStep.State.PENDING, opened_at=now
            )
        if action in ("approve_final", "reject"):
            waiver.decision = "approved" if action == "approve_final" else "rejected"
            waiver.decision_rationale, waiver.decided_at = comment, now
        waiver.status, waiver.updated_at = target, now
        waiver.save()
        if action == "approve_final" and waiver.kind == Waiver.Kind.AMENDMENT:
            _supersede(waiver.predecessor, waiver, by, now)
        if action == "approve_final":
            _create_tasks(waiver, policy.document.implementation.tasks, now)
        _tell_decision(waiver, policy, action, step, later if step_done else None, now)
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
                "checks": sorted(checks or []),
                "conditions": [
                    {"text": c.text, "owner": c.owner.username, "due": c.due.isoformat()}
                    for c in new_conditions
                ],
            },
            at=now,
        )
    return approval


def may_act(waiver: Waiver, by: User) -> str | None:
    """Why `by` may not act on the waiver's pending step, or None when they may."""
    step = waiver.current_route().filter(status=RouteStep.State.PENDING).first()
    try:
        _require_may_act(waiver, step, by, policy_of(waiver))
    except Denied as denied:
        return denied.message
    return None


def _require_may_act(waiver: Waiver, step: RouteStep | None, by: User, policy: Policy) -> None:
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


def _tick_checks(
    waiver: Waiver, policy: Policy, names: list[str], by: User, now: datetime, final: bool
) -> None:
    """Record checks as passed; the approval that decides the waiver needs them all."""
    required = {c.name for c in policy.types[waiver.type].checks}
    unknown = sorted(set(names) - required)
    if unknown:
        raise Invalid(
            [
                Problem(
                    "checks", "unknown_check", f"{', '.join(unknown)} is not a check of this type"
                )
            ]
        )
    ticked = {**waiver.checks, **{n: {"by": by.username, "at": now.isoformat()} for n in names}}
    missing = sorted(required - set(ticked))
    if final and missing:
        raise Invalid(
            [
                Problem(
                    "checks",
                    "checks_pending",
                    f"record these checks as passed before approving: {', '.join(missing)}",
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
        result.append(_Condition(text, owner, due_date))
    if problems:
        raise Invalid(problems)
    return result


@dataclass(frozen=True)
class _Condition:
    text: str
    owner: User | None
    due: date | None


def _supersede(old: Waiver, new: Waiver, by: User, now: datetime) -> None:
    old = Waiver.objects.select_for_update().get(pk=old.pk)
    previous, target = old.status, _next(old, "supersede")
    old.status, old.ended_reason, old.updated_at = target, f"amended by {new.reference}", now
    old.save()
    entitlements.revert([old], now)
    audit.append(
        by.username,
        "waiver.superseded",
        old,
        {"from": previous, "to": target, "by_amendment": new.reference},
        at=now,
    )


def _require_predecessor_in_force(waiver: Waiver, today: date) -> None:
    old = waiver.predecessor
    if old.status not in IN_FORCE or old.end < today:
        raise Denied(
            "predecessor_ended",
            f"{old.reference} is {old.status} and ended {old.end}; a "
            f"{waiver.kind} must be approved while it is in force — start a new request",
        )


# -- renewal and amendment ------------------------------------------------------


@refusals_audited("renew")
def renew(reference: str, by: User, data: dict[str, Any], now: datetime | None = None) -> Waiver:
    """Request a renewal: a new linked request with fresh justification and its own route."""
    now = now or clock.now()
    changes = dict(data or {})
    problems = []
    if not isinstance(changes.get("justification"), dict) or not any(
        str(v).strip() for v in changes["justification"].values()
    ):
        problems.append(
            Problem("justification", "required", "a renewal needs a fresh justification")
        )
    if "end" not in changes:
        problems.append(Problem("end", "required", "say until when the renewal should last"))
    if problems:
        raise Invalid(problems)
    return _successor(reference, by, changes, "renew", Waiver.Kind.RENEWAL, now)


@refusals_audited("amend")
def amend(reference: str, by: User, data: dict[str, Any], now: datetime | None = None) -> Waiver:
    """Request an amendment (scope or dates): a linked request that goes through policy again."""
    if not data:
        raise Invalid([Problem("body", "required", "say what the amendment changes")])
    return _successor(reference, by, dict(data), "amend", Waiver.Kind.AMENDMENT, now or clock.now())


def _successor(reference, by, changes, action, kind, now) -> Waiver:
    with transaction.atomic():
        old = _lock(reference)
        _next(old, action)
        _require_requester(old, by)
        if old.successors.filter(kind=kind, status__in=[*OPEN, *IN_FORCE]).exists():
            raise Denied(f"{kind}_exists", f"{old.reference} already has an open {kind}")
        base = intake.body_of(old)
        if kind == Waiver.Kind.RENEWAL:
            base.update(
                start=(old.end + timedelta(days=1)).isoformat(), justification={}, evidence={}
            )
            if changes["justification"] == old.justification:
                raise Invalid(
                    [
                        Problem(
                            "justification",
                            "not_fresh",
                            "write a fresh justification, not the previous one",
                        )
                    ]
                )
        resolved = intake.read(intake.merge(base, changes))
        _require_initiator(resolved.body.type, by)
        if resolved.body.type != old.type:
            raise Invalid([Problem("type", "invalid", f"a {kind} keeps the type {old.type}")])
        waiver = _create(resolved, by, now, predecessor=old, kind=kind, submit=resolved.body.submit)
        if kind == Waiver.Kind.RENEWAL:
            notify.publish(
                "waiver.renewed", old, {"renewal": waiver.reference}, _stakeholders(old), now
            )
    return waiver


# -- evidence -------------------------------------------------------------------

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,59}$")


@refusals_audited("attach")
def attach(
    reference: str,
    by: User,
    filename: str,
    content: bytes,
    content_type: str,
    kind: str,
    now: datetime | None = None,
) -> Attachment:
    """Store a file of evidence with a request that is still open."""
    now = now or clock.now()
    if not _KIND.match(kind or ""):
        raise Invalid([Problem("kind", "invalid", "name the evidence, e.g. usage_forecast")])
    stored = attachments.store(filename, content, content_type)  # raises Invalid
    try:
        with transaction.atomic():
            waiver = _lock(reference)
            _next(waiver, "attach")
            _require_requester(waiver, by)
            attachment = _record_attachment(waiver, kind, stored, by, now)
    except BaseException:
        attachments.discard_unless_used(stored.sha256)
        raise
    return attachment


def _record_attachment(
    waiver: Waiver, kind: str, stored: attachments.Stored, by: User, now: datetime
) -> Attachment:
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
    audit.append(
        by.username,
        "waiver.attached",
        waiver,
        {"kind": kind, "filename": stored.filename, "sha256": stored.sha256, "size": stored.size},
        at=now,
    )
    return attachment


# -- implementation ------------------------------------------------------------------


def _create_tasks(waiver: Waiver, specs, now: datetime) -> None:
    Task.objects.bulk_create(_task(waiver, spec, now) for spec in specs)


def _create_revert_tasks(waivers: list[Waiver], now: datetime) -> None:
    """When exceptions end, their entitlement changes are to be reverted (once each)."""
    specs = [(w, policy_of(w).document.implementation.revert) for w in waivers]
    Task.objects.bulk_create(
        [_task(w, spec, now) for w, spec in specs if spec is not None], ignore_conflicts=True
    )


def _task(waiver: Waiver, spec, now: datetime) -> Task:
    owner = {"requester": waiver.requester, "control_owner": waiver.control_owner}.get(spec.role)
    return Task(
        waiver=waiver,
        name=spec.name,
        title=spec.title,
        role=spec.role,
        owner=owner,
        required=spec.required,
        due=now.date() + timedelta(days=spec.due_days),
        created_at=now,
    )


def may_do(task: Task, by: User) -> bool:
    """Whether `by` may mark `task` done: its owner, a holder of its role, or an admin."""
    roles = roles_of(by)
    if "admin" in roles:
        return True
    return by.pk == task.owner_id if task.owner_id else task.role in roles


def complete_task(task_id: int, by: User, note: str = "", now: datetime | None = None) -> Task:
    """Mark an implementation task done; the worker activates the waiver once its start has
    come and its required tasks are done."""
    now = now or clock.now()
    with transaction.atomic():
        task = (
            Task.objects.select_for_update(of=("self",))
            .select_related("waiver", "owner")
            .get(pk=task_id)
        )
        if not may_do(task, by):
            who = task.owner.username if task.owner else f"the {task.role} role"
            raise Denied("not_task_owner", f"this task is for {who}")
        if task.status == Task.State.DONE:
            raise Denied("already_done", "this task is done already")
        task.status, task.done_by, task.done_at, task.note = Task.State.DONE, by, now, note
        task.save()
        audit.append(
            by.username,
            "task.done",
            task.waiver,
            {"task": task.name, "note": note},
            at=now,
        )
    return task


# -- the clock --------------------------------------------------------------------


def due_for_clock(today: date):
    """Waivers that the passing of time activates (their start has come and their required
    tasks are done) or ends today."""
    work_left = Task.objects.filter(waiver=OuterRef("pk"), required=True, status=Task.State.OPEN)
    return Waiver.objects.filter(
        Q(status=Status.APPROVED, start__lte=today, end__gte=today) & ~Exists(work_left)
        | Q(status__in=IN_FORCE, end__lt=today)
    )


def sweep(
    now: datetime | None = None, dry_run: bool = False, batch: int = 1000
) -> list[tuple[str, str]]:
    """Activate waivers whose start has come (their required work done) and expire those
    whose end has passed, a batch per transaction.

    Each waiver changes only if it is still in the state it was read in and no other
    sweeper holds it, so two sweepers at once never activate or expire a waiver twice,
    and a second run changes nothing.
    """
    now = now or clock.now()
    today = now.date()
    due = [
        (pk, reference, status, action)
        for pk, reference, status, start, end in due_for_clock(today)
        .order_by("pk")
        .values_list("pk", "reference", "status", "start", "end")
        if (action := lifecycle.due_clock_action(status, start, end, today))
    ]
    if dry_run:
        return [(reference, action) for _pk, reference, _status, action in due]
    done = []
    for first in range(0, len(due), batch):
        done += _sweep_batch(due[first : first + batch], now)
    return done


def _sweep_batch(rows: list[tuple], now: datetime) -> list[tuple[str, str]]:
    with transaction.atomic():
        held = dict(
            Waiver.objects.select_for_update(skip_locked=True)
            .filter(pk__in=[r[0] for r in rows])
            .values_list("pk", "status")
        )
        moving = [r for r in rows if held.get(r[0]) == r[2]]  # as read, and not another's
        targets = {}
        for pk, _reference, status, action in moving:
            targets.setdefault((status, lifecycle.next_status(status, action)), []).append(pk)
        for (status, target), pks in targets.items():
            took_effect = {"activated_at": now} if target == Status.ACTIVE else {}
            Waiver.objects.filter(pk__in=pks, status=status).update(
                status=target, updated_at=now, **took_effect
            )
        waivers = {w.pk: w for w in _with_parties(Waiver.objects.filter(pk__in=held))}
        ended = [waivers[pk] for pk, *_ in moving if waivers[pk].status == Status.EXPIRED]
        _create_revert_tasks(ended, now)
        entitlements.grant(
            [waivers[pk] for pk, *_ in moving if waivers[pk].status == Status.ACTIVE], now
        )
        entitlements.revert(ended, now)
        for target in (Status.ACTIVE, Status.EXPIRED):
            changed = [waivers[pk] for pk, *_ in moving if waivers[pk].status == target]
            event = "waiver.activated" if target == Status.ACTIVE else "waiver.expired"
            notify.publish_many(event, [(w, {}, _stakeholders(w)) for w in changed], now)
        audit.append_many(
            [
                ("system", f"waiver.{waivers[pk].status}", "waiver", reference,
                 {"from": status, "to": waivers[pk].status, "today": now.date().isoformat()}, now)
                for pk, reference, status, _action in moving
            ]
        )  # fmt: skip
    return [(reference, action) for _pk, reference, _status, action in moving]


# -- who is told ---------------------------------------------------------------


def _stakeholders(waiver: Waiver, names=("requester", "control_owner", "account_owner")):
    """The people a waiver's news concerns, by the names the policy uses."""
    people = {
        "requester": waiver.requester,
        "control_owner": waiver.control_owner,
        "account_owner": waiver.customer.account_owner,
    }
    return [people[n] for n in names]


def _tell_approvers(waiver: Waiver, role: str, tier: str, now: datetime) -> None:
    waiting = [u for u in notify.holders(role) if u.pk != waiver.requester_id]
    notify.publish("waiver.step_opened", waiver, {"tier": tier}, waiting, now)


def _tell_decision(waiver, policy, action, step, opened, now) -> None:
    """After a decision: the outcome to those the policy names, or the next tier's turn."""
    if action in ("approve_final", "reject"):
        event = "waiver.approved" if action == "approve_final" else "waiver.rejected"
        people = _stakeholders(waiver, policy.document.notify.decisions)
        notify.publish(event, waiver, {"tier": step.tier}, people, now)
    elif action == "request_changes":
        notify.publish(
            "waiver.changes_requested", waiver, {"tier": step.tier}, [waiver.requester], now
        )
    else:
        notify.publish("waiver.decided", waiver, {"tier": step.tier}, [waiver.requester], now)
        if opened is not None:
            _tell_approvers(waiver, opened.role, opened.tier, now)


# -- shared guards -----------------------------------------------------------------


def _lock(reference: str) -> Waiver:
    """The waiver, its row locked until the transaction ends (its related rows are not)."""
    try:
        return _with_parties(Waiver.objects.select_for_update(of=("self",))).get(
            reference=reference
        )
    except Waiver.DoesNotExist:
        raise NotFound(reference) from None


def _next(waiver: Waiver, action: str) -> Status:
    try:
        return lifecycle.next_status(waiver.status, action)
    except IllegalTransition as exc:
        raise Denied("invalid_state", str(exc)) from None


def _require_requester(waiver: Waiver, by: User) -> None:
    if by.pk != waiver.requester_id and "admin" not in roles_of(by):
        raise Denied("not_requester", "only the requester may do this")


def _require_reviewer(waiver: Waiver, by: User) -> None:
    if by.pk == waiver.requester_id:
        raise Denied("self_approval", "the requester may not override the risk of their request")
    route_roles = set(waiver.current_route().values_list("role", flat=True))
    if not roles_of(by) & (route_roles | {"policy_admin"}):
        raise Denied("not_reviewer", "only a reviewer on this route may override its risk")


def allowed(waiver: Waiver, by: User, action: str) -> bool:
    """Whether the state table and the rules let `by` do `action` (withdraw, edit, submit,
    terminate, override_risk) now: what a page offers, before the service decides."""
    try:
        lifecycle.next_status(waiver.status, action)
    except IllegalTransition:
        return False
    rule = {
        "withdraw": _require_requester,
        "edit": _require_requester,
        "submit": _require_requester,
        "terminate": _require_terminator,
        "override_risk": _require_reviewer,
    }[action]
    try:
        rule(waiver, by)
    except Denied:
        return False
    return True


def _require_terminator(waiver: Waiver, by: User) -> None:
    allowed = policy_of(waiver).document.termination.roles
    person = ("control_owner" in allowed and by.pk == waiver.control_owner_id) or (
        "requester" in allowed and by.pk == waiver.requester_id
    )
    held = roles_of(by) & (set(allowed) - {"control_owner", "requester"})
    if not person and not held:
        raise Denied("not_allowed", f"the policy lets {', '.join(allowed)} terminate an exception")
