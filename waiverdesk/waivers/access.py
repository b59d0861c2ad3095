"""Who may see which waivers: anything else is a 404, never a hint that it exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import User
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from waiverdesk.core.lifecycle import UNDER_REVIEW
from waiverdesk.directory.services import roles_of

from .models import Attachment, RouteStep, Task, Waiver
from .services import NotFound
from .services.separation import conflicted_query, decided_this_round

READ_ALL_ROLES = frozenset({"auditor", "admin"})


def visible_to(user: User) -> QuerySet[Waiver]:
    """Requesters see their own, control owners what they own, approvers what is on routes
    they may act on, implementers what they have tasks on; auditors and admins see all."""
    waivers = Waiver.objects.all()
    roles = roles_of(user)
    if roles & READ_ALL_ROLES:
        return waivers
    on_my_route = RouteStep.objects.filter(waiver=OuterRef("pk"), role__in=roles)
    my_work = Task.objects.filter(waiver=OuterRef("pk"), owner__isnull=True, role__in=roles)
    return waivers.filter(
        Q(requester=user) | Q(control_owner=user) | Q(Exists(on_my_route)) | Q(Exists(my_work))
    )


def require_visible(user: User, reference: str) -> str:
    """`reference`, if `user` may see that waiver; otherwise NotFound, as if it did not exist."""
    if not visible_to(user).filter(reference=reference).exists():
        raise NotFound(reference)
    return reference


def visible_attachment(user: User, reference: str, pk: int) -> Attachment:
    """A file of evidence of a waiver `user` may see; otherwise NotFound, like the waiver."""
    file = Attachment.objects.filter(waiver__reference=require_visible(user, reference), pk=pk)
    found = file.first()
    if found is None:
        raise NotFound(reference)
    return found


def pending_for(user: User) -> QuerySet[Waiver]:
    """Waivers whose pending step needs one of the user's roles (the user's inbox)."""
    pending = RouteStep.objects.filter(
        waiver=OuterRef("pk"),
        round=OuterRef("round"),
        status=RouteStep.State.PENDING,
        role__in=roles_of(user),
    )
    return Waiver.objects.filter(Exists(pending), status__in=UNDER_REVIEW).exclude(requester=user)


@dataclass
class Inbox:
    """What waits on a person's roles: what they may decide (`decidable`, counted) and what
    they may not (`held_back`: conflicted, or already on the route; listed apart)."""

    decidable: QuerySet[Waiver]
    held_back: QuerySet[Waiver]
    counts: Callable[[], tuple[int, int]]  # (decidable, held back), in one pass


def inbox_of(user: User) -> Inbox:
    """The person's inbox; the rule of who may not decide is worked out once for it."""
    pending = pending_for(user)
    may_not = Q(conflicted_query(user)) | Q(decided_this_round(user))

    def counts() -> tuple[int, int]:
        found = pending.aggregate(waiting=Count("pk"), decidable=Count("pk", filter=~may_not))
        return found["decidable"], found["waiting"] - found["decidable"]

    return Inbox(pending.exclude(may_not), pending.filter(may_not), counts)


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
        waivers = waivers & pending_for(user)
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
