"""Delegation: an approver who is away hands their decisions to another person for a period.

A delegate decides in the delegator's tier, on the delegator's roles only (the roles they
hold themselves: what a delegate was handed cannot be handed on, so there are no chains),
and only where the policy lets that tier be delegated. Separation of duties is checked
against both people when a decision is made (see separation.require_may_act).
"""

from __future__ import annotations

from datetime import date, datetime

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.directory.services import roles_of
from waiverdesk.policies import services as policies

from ..models import Delegation

MAX_DAYS = 366  # a delegation covers an absence, not a job


def approver_roles() -> set[str]:
    """The roles that decide a step under the active policy: what may be delegated."""
    try:
        return set(policies.compiled(policies.active_version()).approver_roles)
    except policies.NoActivePolicy:
        return set()


def delegate(
    delegator: User | str,
    to: User | str | None,
    starts: date | str | None,
    ends: date | str | None,
    by: User,
    role: str = "",
    now: datetime | None = None,
) -> Delegation:
    """Hand `delegator`'s approver role (`role`, or every one they hold) to `to` (people or
    user names) from `starts` to `ends` (dates or YYYY-MM-DD), both days included. The
    delegator sets it, or an admin for them."""
    now = now or clock.now()
    delegator = _person(delegator)
    if delegator is None:
        raise Invalid([Problem("delegator", "unknown_user", "name a person")])
    if by.pk != delegator.pk and "admin" not in roles_of(by):
        raise Denied("not_yours", "only the approver or an admin may delegate their decisions")
    to = _person(to)
    starts, ends, role = _day(starts), _day(ends), (role or "").strip()
    problems = _problems(delegator, to, starts, ends, role, now.date())
    if problems:
        raise Invalid(problems)
    with audit.atomic():
        User.objects.select_for_update().filter(pk=delegator.pk).first()  # one at a time each
        clash = _overlapping(delegator, starts, ends, role).first()
        if clash is not None:
            raise Invalid([Problem("starts", "overlaps", f"{delegator.username} has already "
                                   f"delegated {clash.role or 'every approver role'} to "
                                   f"{clash.delegate.username} from {clash.starts} to "
                                   f"{clash.ends}; end that one first")])  # fmt: skip
        away = _overlapping(to, starts, ends, "").first()
        if away is not None:
            raise Invalid([Problem("delegate", "away", f"{to.username} is away then too (they "
                                   f"delegated to {away.delegate.username} from {away.starts} "
                                   f"to {away.ends}); a delegation is not handed on")])  # fmt: skip
        made = Delegation.objects.create(delegator=delegator, delegate=to, role=role,
                                         starts=starts, ends=ends, created_by=by,
                                         created_at=now)  # fmt: skip
        audit.append(by.username, "delegation.created", None, describe(made),
                     object_type="delegation", object_ref=str(made.pk), at=now)  # fmt: skip
    return made


def end(pk: int, by: User, now: datetime | None = None) -> Delegation:
    """Call a delegation off (its delegator, its delegate or an admin): it no longer counts
    from now; decisions made under it stand."""
    now = now or clock.now()
    with audit.atomic():
        found = Delegation.objects.select_for_update().filter(pk=pk).first()
        if found is None or not _may_see(found, by):
            raise Denied("not_found", f"no delegation {pk} of yours")
        if found.ended_at is not None:
            when = f"{found.ended_at:%Y-%m-%d}"
            raise Denied("already_ended", f"delegation {pk} was called off on {when}")
        found.ended_at = now
        found.save(update_fields=["ended_at"])
        audit.append(by.username, "delegation.ended", None, describe(found),
                     object_type="delegation", object_ref=str(pk), at=now)  # fmt: skip
    return found


def describe(d: Delegation) -> dict:
    return {
        "id": d.pk,
        "delegator": d.delegator.username,
        "delegate": d.delegate.username,
        "role": d.role or None,
        "starts": d.starts.isoformat(),
        "ends": d.ends.isoformat(),
        "ended_at": d.ended_at.isoformat() if d.ended_at else None,
    }


def of(user: User) -> QuerySet[Delegation]:
    """The delegations `user` gave or was given, newest first."""
    return (
        Delegation.objects.filter(Q(delegator=user) | Q(delegate=user))
        .select_related("delegator", "delegate")
        .order_by("-starts", "-id")
    )


def in_force(today: date) -> QuerySet[Delegation]:
    return Delegation.objects.filter(
        starts__lte=today, ends__gte=today, ended_at__isnull=True, delegator__is_active=True
    )


def acting_for(delegate: User, today: date) -> list[tuple[User, frozenset[str]]]:
    """The people `delegate` decides for today, each with the roles handed over (roles the
    delegator holds themselves, never ones handed to them)."""
    found = []
    for d in in_force(today).filter(delegate=delegate).select_related("delegator"):
        held = roles_of(d.delegator) & approver_roles()
        roles = held & {d.role} if d.role else held
        if roles:
            found.append((d.delegator, frozenset(roles)))
    return found


def delegates_of(users: list[User], role: str, today: date) -> list[tuple[User, User]]:
    """(delegate, delegator) for each of `users` (active) who handed `role` to someone
    today: read by the delegators' ids alone, the few found checked here."""
    by_id = {u.pk: u for u in users}
    found = Delegation.objects.filter(delegator_id__in=by_id, starts__lte=today, ends__gte=today,
                                      ended_at__isnull=True).select_related("delegate")  # fmt: skip
    return [(d.delegate, by_id[d.delegator_id]) for d in found
            if d.role in ("", role) and d.delegate.is_active]  # fmt: skip


def _person(who: User | str | None) -> User | None:
    """A person, or the one a user name names (a name with a NUL names nobody, and no
    database stores it)."""
    if not isinstance(who, str):
        return who
    return User.objects.filter(username=who.strip()).first() if "\x00" not in who else None


def _day(value: date | str | None) -> date | None:
    if isinstance(value, date) or value is None:
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def _may_see(d: Delegation, by: User) -> bool:
    return by.pk in (d.delegator_id, d.delegate_id) or "admin" in roles_of(by)


def _overlapping(person: User, starts: date, ends: date, role: str) -> QuerySet[Delegation]:
    same = Q() if not role else Q(role="") | Q(role=role)
    return Delegation.objects.filter(same, delegator=person, ended_at__isnull=True,
                                     starts__lte=ends, ends__gte=starts)  # fmt: skip


def _problems(delegator, to, starts, ends, role, today) -> list[Problem]:
    problems = []
    held = roles_of(delegator) & approver_roles()
    if not delegator.is_active:
        problems.append(Problem("delegator", "inactive", f"{delegator.username} is deactivated"))
    if role and role not in held:
        known = ", ".join(sorted(held)) or "none"
        problems.append(Problem("role", "not_held", f"{delegator.username} does not decide as "
                                f"{role} (their approver roles: {known})"))  # fmt: skip
    elif not held:
        problems.append(
            Problem(
                "delegator",
                "not_approver",
                f"{delegator.username} holds no approver role to delegate",
            )
        )
    if to is None:
        problems.append(Problem("delegate", "unknown_user", "name an active person"))
    elif not to.is_active:
        problems.append(Problem("delegate", "inactive", f"{to.username} is deactivated"))
    elif to.pk == delegator.pk:
        problems.append(Problem("delegate", "self", "a person cannot delegate to themselves"))
    if starts is None:
        problems.append(Problem("starts", "invalid", "give the first day as a date (YYYY-MM-DD)"))
    if ends is None:
        problems.append(Problem("ends", "invalid", "give the last day as a date (YYYY-MM-DD)"))
    if starts and ends:
        if ends < starts:
            problems.append(Problem("ends", "before_start", "the last day is before the first"))
        elif ends < today:
            problems.append(Problem("ends", "in_past", "the last day has passed"))
        elif (ends - starts).days >= MAX_DAYS:
            problems.append(Problem("ends", "too_long", f"a delegation lasts at most {MAX_DAYS} "
                                    "days; make another when it ends"))  # fmt: skip
    return problems
