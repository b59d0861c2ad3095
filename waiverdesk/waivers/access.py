"""Who may see which waivers: anything else is a 404, never a hint that it exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import User
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from waiverdesk import clock
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.lifecycle import UNDER_REVIEW
from waiverdesk.directory.services import roles_of

from .models import Attachment, RouteStep, Task, Waiver
from .services import NotFound, with_parties
from .services.delegating import acting_for
from .services.separation import conflicted_query, decided_this_round

READ_ALL_ROLES = frozenset({"auditor", "admin"})


def visible_to(user: User) -> QuerySet[Waiver]:
    """Requesters see their own, control owners what they own, approvers what is on routes
    they may act on (a delegate what is on the routes of the roles handed to them; holders of
    a role a step escalated to, that step's request), implementers what they have tasks on;
    auditors and admins see all."""
    waivers = Waiver.objects.all()
    if roles_of(user) & READ_ALL_ROLES:
        return waivers
    escalated = RouteStep.objects.filter(escalated_at__isnull=False, escalate_to__in=roles_of(user))
    seen = _seen_by(user, escalated=escalated.exists())  # most people's: no escalated steps
    handed = {r for _delegator, held in acting_for(user, clock.now().date()) for r in held}
    if handed:  # what they decide for an approver who is away
        seen |= Q(Exists(RouteStep.objects.filter(waiver=OuterRef("pk"), role__in=handed)))
    return waivers.filter(seen)


def _seen_by(user: User, escalated: bool) -> Q:
    """What `user` sees by their own roles (with `escalated`, steps escalated to them too)."""
    roles = roles_of(user)
    on_my_route = RouteStep.objects.filter(waiver=OuterRef("pk"), role__in=roles)
    my_work = Task.objects.filter(waiver=OuterRef("pk"), owner__isnull=True, role__in=roles)
    seen = Q(requester=user) | Q(control_owner=user) | Q(Exists(on_my_route)) | Q(Exists(my_work))
    if escalated:
        steps = RouteStep.objects.filter(escalated_at__isnull=False, escalate_to__in=roles)
        seen |= Q(Exists(steps.filter(waiver=OuterRef("pk"))))
    return seen


def require_known_type(kind: str | None) -> None:
    """Refuse a filter by a type that neither the active policy nor any request has."""
    from waiverdesk.api.documented import policy_types

    types = policy_types()
    if kind and kind not in types and not Waiver.objects.filter(type=kind).exists():
        message = f"no type {kind}; the policy's types are {', '.join(types)}"
        raise Invalid([Problem("type", "invalid", message)])


def require_visible(user: User, reference: str) -> str:
    """`reference`, if `user` may see that waiver; otherwise NotFound, as if it did not exist."""
    return visible_waiver(user, reference).reference


def visible_waiver(user: User, reference: str) -> Waiver:
    """The waiver, with its parties, if `user` may see it; otherwise NotFound. The rule of
    `visible_to`, asked of one waiver: one query for most people."""
    one = with_parties(Waiver.objects.filter(reference=reference))
    reads_all = bool(roles_of(user) & READ_ALL_ROLES)
    found = one.filter(Q() if reads_all else _seen_by(user, escalated=True)).first()
    if found is None and not reads_all:  # as someone's delegate?
        found = one.filter(pk__in=visible_to(user).values("pk")).first()
    if found is None:
        raise NotFound(reference)
    return found


def visible_attachment(user: User, reference: str, pk: int) -> Attachment:
    """A file of evidence of a waiver `user` may see; otherwise NotFound, like the waiver."""
    file = Attachment.objects.filter(waiver__reference=require_visible(user, reference), pk=pk)
    found = file.first()
    if found is None:
        raise NotFound(reference)
    return found


def _waiting_on(roles, delegated: bool = False) -> Exists:
    """Whether the waiver's current round has an open step that `roles` may decide: as its
    role, or as the role it escalated to; `delegated`, only steps that may be delegated."""
    steps = RouteStep.objects.filter(
        waiver=OuterRef("pk"), round=OuterRef("round"), status=RouteStep.State.PENDING
    )
    if delegated:
        return Exists(steps.filter(role__in=roles, delegable=True))
    escalated = RouteStep.objects.filter(
        status=RouteStep.State.PENDING, escalated_at__isnull=False, escalate_to__in=roles
    )
    if escalated.exists():  # rare: most people's inbox stays one indexed lookup
        return Exists(steps.filter(Q(role__in=roles) | Q(escalated_at__isnull=False,
                                                         escalate_to__in=roles)))  # fmt: skip
    return Exists(steps.filter(role__in=roles))


def pending_for(user: User) -> QuerySet[Waiver]:
    """Waivers with an open step that needs one of the user's roles, or the roles handed to
    them by an approver who is away (what the user's inbox looks at)."""
    waiting = Q(_waiting_on(roles_of(user)))
    for _delegator, roles in acting_for(user, clock.now().date()):
        waiting |= Q(_waiting_on(roles, delegated=True))
    return Waiver.objects.filter(waiting, status__in=UNDER_REVIEW).exclude(requester=user)


@dataclass
class Inbox:
    """What waits on a person's roles: what they may decide (`decidable`, counted) and what
    they may not (`held_back`: conflicted, or already on the route; listed apart)."""

    decidable: QuerySet[Waiver]
    held_back: QuerySet[Waiver]
    counts: Callable[[], tuple[int, int]]  # (decidable, held back), in one pass
    roles: frozenset[str] = frozenset()  # the person's own and those handed to them


def inbox_of(user: User) -> Inbox:
    """The person's inbox; the rule of who may not decide is worked out once for it. A step
    decided as a delegate counts when neither the delegate nor the approver they stand in
    for is conflicted or on the route already."""
    pending = pending_for(user)
    may_not = Q(conflicted_query(user)) | Q(decided_this_round(user))
    handed = acting_for(user, clock.now().date())
    if handed:
        may = Q(_waiting_on(roles_of(user)))
        for delegator, roles in handed:
            for_them = Q(conflicted_query(delegator)) | Q(decided_this_round(delegator))
            may |= Q(_waiting_on(roles, delegated=True)) & ~for_them
        may_not = may_not | ~may

    def counts() -> tuple[int, int]:
        found = pending.aggregate(waiting=Count("pk"), decidable=Count("pk", filter=~may_not))
        return found["decidable"], found["waiting"] - found["decidable"]

    roles = roles_of(user) | {r for _delegator, held in handed for r in held}
    return Inbox(pending.exclude(may_not), pending.filter(may_not), counts, frozenset(roles))


def decidable_by(user: User) -> QuerySet[Waiver]:
    """The inbox that counts: waivers whose pending step `user` may decide now (holding its
    role, not conflicted, not already on its route)."""
    return inbox_of(user).decidable


def held_back_from(user: User) -> QuerySet[Waiver]:
    """Waivers waiting on a role `user` holds that `user` may not decide: never counted."""
    return inbox_of(user).held_back


def search(
    user: User,
    *,
    status: str | None = None,
    type: str | None = None,
    customer: str | None = None,
    product: str | None = None,
    requester: str | None = None,
    pending_for_me: bool = False,
    expiring_before: date | None = None,
) -> QuerySet[Waiver]:
    """The waivers `user` may see that match every filter given, newest first."""
    waivers = visible_to(user)
    if pending_for_me:
        waivers = waivers & decidable_by(user)
    conditions = {
        "status": status,
        "type": type,
        "customer__external_id": customer,
        "products__code": product,
        "requester__username": requester,
        "end__lt": expiring_before,
    }
    waivers = waivers.filter(**{k: v for k, v in conditions.items() if v is not None})
    return waivers.distinct().select_related("customer", "requester").order_by("-created_at", "-id")
