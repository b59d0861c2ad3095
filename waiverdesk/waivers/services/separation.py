"""Separation of duties: who may decide, shape, review and end a waiver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import Exact

from waiverdesk import clock
from waiverdesk.core import lifecycle
from waiverdesk.core.errors import Denied
from waiverdesk.core.lifecycle import IllegalTransition
from waiverdesk.core.policy import Policy
from waiverdesk.directory.models import Customer
from waiverdesk.directory.services import holding, roles_of
from waiverdesk.policies import services as policies
from waiverdesk.policies.models import PolicyVersion

from ..models import Approval, RouteStep, Waiver
from .guards import policy_of, require_requester


def may_act(waiver: Waiver, by: User, today: date | None = None) -> str | None:
    """Why `by` may not act on any of the waiver's pending steps, or None when they may."""
    try:
        step_for(waiver, by, policy_of(waiver), today or clock.now().date())
    except Denied as denied:
        return denied.message
    return None


def step_for(
    waiver: Waiver, by: User, policy: Policy, today: date, tier: str | None = None
) -> tuple[RouteStep, User | None]:
    """The pending step `by` may decide (of `tier` when named; with parallel tiers, the first
    they may), and the approver they decide for when they decide as a delegate; else the
    refusal (Denied) of the first step."""
    pending = [s for s in waiver.current_steps() if s.status == RouteStep.State.PENDING]
    if tier:
        pending = [s for s in pending if s.tier == tier]
        if not pending:
            raise Denied("nothing_pending", f"no {tier} step of this waiver is waiting for a "
                         "decision")  # fmt: skip
    refusal, stakes = None, stakes_of(waiver, policy) if pending else None
    for step in pending:
        try:
            return step, require_may_act(waiver, step, by, policy, today, stakes)
        except Denied as denied:
            refusal = refusal or denied
    if refusal is None:
        raise Denied("nothing_pending", "no step of this waiver is waiting for a decision")
    raise refusal


def predecessors(waiver: Waiver) -> list[Waiver]:
    """The exceptions `waiver` continues (renews or amends), nearest first."""
    chain, seen = [], {waiver.pk}
    earlier = waiver.predecessor
    while earlier is not None and earlier.pk not in seen:
        chain.append(earlier)
        seen.add(earlier.pk)
        earlier = earlier.predecessor
    return chain


def conflicted(waiver: Waiver, policy: Policy) -> dict[int, tuple[str, str]]:
    """Who may neither decide on `waiver` nor shape its decision now: user id -> (code, why).

    The requester, every requester of the exceptions it continues, its control owner, the
    customer's account owner as it is now (when the policy marks account owners), and whoever
    edited the request for the current round.
    """
    people: dict[int, tuple[str, str]] = {}

    def mark(pk: int | None, code: str, why: str) -> None:
        if pk is not None:
            people.setdefault(pk, (code, why))

    mark(waiver.requester_id, "self_approval", "you requested this waiver")
    for earlier in predecessors(waiver):
        mark(earlier.requester_id, "self_approval",
             f"you requested {earlier.reference}, which this {waiver.kind} continues")  # fmt: skip
    if "account_owner" in policy.document.separation_of_duties.conflicted:
        mark(waiver.customer.account_owner_id, "conflict_of_interest",
             "you own this customer's account")  # fmt: skip
    mark(waiver.control_owner_id, "conflict_of_interest", "you are its control owner")
    for pk, edited_round in waiver.editors.items():
        if edited_round == waiver.round:
            mark(int(pk), "edited_this_round", "you edited this request in this round")
    return people


def conflicted_query(by: User) -> Q:
    """Which waivers `by` is conflicted on now: the rule of `conflicted` as a query, so that
    a list counts exactly the steps `by` may decide."""
    marking = [
        v.pk
        for v in PolicyVersion.objects.all()
        if "account_owner" in policies.compiled(v).document.separation_of_duties.conflicted
    ]
    owned = Customer.objects.filter(account_owner=by).values_list("pk", flat=True)
    continuing = Waiver.objects.filter(pk__in=_continuing_what_by_requested(by))
    edited = Coalesce(KT(f"editors__{by.pk}"), Value(""), output_field=CharField())  # not null
    return (
        Q(requester=by)
        | Q(control_owner=by)
        | Q(pk__in=_known(continuing.values_list("pk", flat=True)))
        | Q(customer__in=_known(owned), policy_version__in=marking)
        | Q(Exact(edited, Cast(F("round"), CharField())))
    )


def _known(ids: QuerySet, most: int = 1000) -> list[int] | QuerySet:
    """The ids, read now when there are at most `most` (usually a handful), else the query.
    Given as values, a list's plan is judged on what it holds; given as a subquery, the
    planner may misjudge it and read every waiver under review to page through 50."""
    found = list(ids[: most + 1])
    return found if len(found) <= most else ids


def _continuing_what_by_requested(by: User) -> RawSQL:
    """The waivers that continue (renew or amend, at any distance) one `by` requested: the
    chains followed forward in one recursive query (UNION, not UNION ALL: a loop in the
    data ends)."""
    table = connection.ops.quote_name(Waiver._meta.db_table)
    return RawSQL(
        f"WITH RECURSIVE continuing(id) AS (SELECT later.id FROM {table} AS later "
        f"JOIN {table} AS earlier ON later.predecessor_id = earlier.id "
        f"WHERE earlier.requester_id = %s UNION SELECT later.id FROM {table} AS later "
        "JOIN continuing ON later.predecessor_id = continuing.id) SELECT id FROM continuing",
        [by.pk],
    )


def decided_this_round(by: User) -> Exists:
    """Whether `by` has decided a step of the waiver's current route, themselves or through
    a delegate (one person, one step)."""
    return Exists(
        Approval.objects.filter(
            Q(user=by) | Q(on_behalf_of=by), waiver=OuterRef("pk"), round=OuterRef("round")
        )  # fmt: skip
    )


def step_roles(step: RouteStep) -> set[str]:
    """The roles that may decide `step`: its own and, once it has escalated, that one."""
    return {step.role, step.escalate_to} if step.escalated_at and step.escalate_to else {step.role}


@dataclass(frozen=True)
class Stakes:
    """Who may not decide a waiver's current round: those `conflicted` (user id -> (code,
    why)) and those already on its route, themselves or through a delegate (user ids)."""

    conflicted: dict[int, tuple[str, str]]
    on_route: frozenset[int]


def stakes_of(waiver: Waiver, policy: Policy) -> Stakes:
    waiver.current_steps()  # and the round's approvals with them
    given = [a for approvals in waiver.in_hand.approvals.values() for a in approvals]
    people = {p for a in given for p in (a.user_id, a.on_behalf_of_id) if p}
    return Stakes(conflicted(waiver, policy), frozenset(people))


def require_may_act(
    waiver: Waiver,
    step: RouteStep | None,
    by: User,
    policy: Policy,
    today: date | None = None,
    stakes: Stakes | None = None,
) -> User | None:
    """Refuse (Denied) unless `by` may decide `step`; the approver they decide for when
    they decide as that approver's delegate, else None. Separation of duties holds for both:
    neither conflicted, neither on this route already. (`stakes`: the waiver's, when the
    caller asks of many people.)"""
    if step is None:
        raise Denied("nothing_pending", "no step of this waiver is waiting for a decision")
    stakes = stakes or stakes_of(waiver, policy)
    people = stakes.conflicted
    if by.pk in people:
        code, why = people[by.pk]
        raise Denied(code, f"{why}, so you may not decide on it")
    if by.pk in stakes.on_route:
        raise Denied(
            "already_on_route",
            "you have already decided on a step of this route; one person fills one step",
        )
    if roles_of(by) & step_roles(step):
        return None
    from .delegating import acting_for

    handed = [d for d, roles in acting_for(by, today or clock.now().date()) if step.role in roles]
    if not handed:
        raise Denied("missing_role", f"the {step.tier} step needs the {step.role} role")
    if not step.delegable:
        raise Denied("not_delegable", f"the policy does not let the {step.tier} step be "
                     f"delegated: it needs the {step.role} role")  # fmt: skip
    refusal = None
    for delegator in handed:
        if delegator.pk in people:
            code, why = people[delegator.pk]
            refusal = refusal or Denied(code, f"you would decide for {delegator.username}, and "
                                        f"{_as_them(why, delegator.username)}, so neither of you "
                                        "may decide on it")  # fmt: skip
        elif delegator.pk in stakes.on_route:
            refusal = refusal or Denied("already_on_route", f"{delegator.username} has already "
                                        "decided on a step of this route; one person fills one "
                                        "step, through a delegate too")  # fmt: skip
        else:
            return delegator
    raise refusal


def deciders(waiver: Waiver, step: RouteStep, policy: Policy, today: date) -> list[User]:
    """Who may decide `step` now, by the rule of `require_may_act`: the active holders of
    its roles and, where it may be delegated, their delegates; nobody conflicted or already
    on the route."""
    from .delegating import delegates_of

    holders = holding(step_roles(step))
    candidates = {u.pk: u for u in holders}
    if step.delegable:
        owners = [u for u in holders if step.role in roles_of(u)]
        candidates.update((d.pk, d) for d, _ in delegates_of(owners, step.role, today))
    stakes, able = stakes_of(waiver, policy), []
    for person in candidates.values():
        try:
            require_may_act(waiver, step, person, policy, today, stakes)
        except Denied:
            continue
        able.append(person)
    return able


def _as_them(why: str, name: str) -> str:
    """A reason of `conflicted`, said of someone else."""
    for you, them in (("you requested", "requested"), ("you own", "owns"), ("you are", "is"),
                      ("you edited", "edited")):  # fmt: skip
        if why.startswith(you):
            return f"{name} {them}{why[len(you) :]}"
    return why


def require_reviewer(waiver: Waiver, by: User) -> None:
    """Whoever may not decide may not shape the decision: a risk override is a reviewer's."""
    if by.pk in (people := conflicted(waiver, policy_of(waiver))):
        code, why = people[by.pk]
        raise Denied(code, f"{why}, so you may not override its risk")
    route_roles = set(waiver.current_route().values_list("role", flat=True))
    if not roles_of(by) & (route_roles | {"policy_admin"}):
        raise Denied("not_reviewer", "only a reviewer on this route may override its risk")


def require_fit_control_owner(waiver: Waiver, route: tuple = ()) -> None:
    """The control owner holds the role and has no stake in the request: not its requester
    (nor the requester of what it continues), not the customer's account owner, and nobody
    who approves on its `route` (the evaluation's steps)."""
    owner = waiver.control_owner
    if owner is None:
        return
    name = owner.username
    if "control_owner" not in roles_of(owner):
        raise Denied("control_owner_role", f"{name} does not hold the control_owner role")
    requesters = {waiver.requester_id, *(w.requester_id for w in predecessors(waiver))}
    deciding = roles_of(owner) & {step.role for step in route}
    reason = None
    if owner.pk in requesters:
        reason = "the control owner must not be the requester"
    elif owner.pk == waiver.customer.account_owner_id:
        reason = "the control owner must not be the customer's account owner"
    elif deciding:
        reason = f"they approve on this request's route ({', '.join(sorted(deciding))})"
    if reason:
        raise Denied("control_owner_conflict", f"{name} cannot be the control owner: {reason}")


def require_attester(waiver: Waiver, by: User) -> None:
    """A governance review is attested by the exception's control owner, holding the role,
    who did not request it."""
    if by.pk != waiver.control_owner_id or "control_owner" not in roles_of(by):
        raise Denied("not_owner", "only the exception's control owner may attest it")
    if by.pk == waiver.requester_id:
        raise Denied("self_attestation", "you requested this exception, so you may not attest it")


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
