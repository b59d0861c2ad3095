"""People over their time here: roles given and taken away, deactivation that ends their
sessions and API tokens at once and names the work they leave to be handed over, and
reactivation. Every door (the command line, the admin pages, single sign-on, SCIM) changes
people through these functions, each one transaction with its audit entry."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem

from .models import Customer
from .services import known_roles, roles_of


@dataclass(frozen=True)
class Work:
    """Something a person is answerable for that someone else must take over."""

    kind: str  # "control", "task", "condition", "account"
    ref: str  # the request's reference, or the customer's id
    what: str  # in words
    pk: int | None = None  # the task's or condition's own id

    def __str__(self) -> str:
        return f"{self.ref}: {self.what}"


def person(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise Invalid([Problem("username", "unknown_user", f"no user named '{username}'")])
    return user


def set_roles(
    username: str, add: list[str] = (), remove: list[str] = (), by: str = "system"
) -> User:
    """Give `username` the roles in `add` and take away those in `remove` (audited, when
    anything changes)."""
    user = person(username)
    unknown = sorted(set(add) - known_roles())
    if unknown:
        known = ", ".join(sorted(known_roles()))
        raise Invalid([Problem("roles", "unknown_role",
                               f"no role named {', '.join(unknown)}; known: {known}")])  # fmt: skip
    if set(add) & set(remove):
        both = ", ".join(sorted(set(add) & set(remove)))
        raise Invalid([Problem("roles", "conflict", f"{both}: both added and removed")])
    return _change_roles(user, set(add), set(remove), by)


def follow_roles(user: User, roles: set[str], by: str) -> User:
    """Make `user`'s roles exactly `roles` (an identity provider's groups, mapped)."""
    held = set(user.groups.values_list("name", flat=True))
    return _change_roles(user, roles - held, held - roles, by)


def _change_roles(user: User, add: set[str], remove: set[str], by: str) -> User:
    held = set(user.groups.values_list("name", flat=True))
    added, removed = sorted(add - held), sorted(remove & held)
    if not added and not removed:
        return user
    with transaction.atomic():
        for role in added:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        if removed:
            user.groups.remove(*Group.objects.filter(name__in=removed))
        audit.append(by, "user.roles_changed", user,
                     {"username": user.username, "added": added, "removed": removed},
                     object_ref=user.username)  # fmt: skip
    user.__dict__.pop("_waiverdesk_roles", None)
    return user


def open_work(user: User) -> list[Work]:
    """What `user` is answerable for now: exceptions they own as control owner (not ended),
    open implementation tasks, open conditions, and customer accounts they own."""
    from waiverdesk.core.lifecycle import IN_FORCE, OPEN
    from waiverdesk.waivers.models import Condition, Task, Waiver

    work = [
        Work(
            "control",
            w.reference,
            f"control owner of this {w.status.replace('_', ' ')} request",
        )
        for w in Waiver.objects.filter(control_owner=user, status__in={*OPEN, *IN_FORCE}).order_by(
            "reference"
        )
    ]
    work += [
        Work("task", t.waiver.reference, f"task: {t.title}", t.pk)
        for t in Task.objects.filter(owner=user, status=Task.State.OPEN)
        .select_related("waiver").order_by("waiver__reference", "id")
    ]  # fmt: skip
    work += [
        Work("condition", c.waiver.reference, f"condition due {c.due.isoformat()}: {c.text}", c.pk)
        for c in Condition.objects.filter(owner=user, status=Condition.State.OPEN)
        .select_related("waiver").order_by("due", "id")
    ]  # fmt: skip
    work += [
        Work("account", c.external_id, f"account owner of {c.name}")
        for c in Customer.objects.filter(account_owner=user).order_by("external_id")
    ]
    return work


def deactivate(username: str, by: str = "system", reason: str = "") -> list[Work]:
    """Stop `username` signing in or using the API, from their next request on: their
    sessions end and their API tokens are revoked, in one transaction with the audit entry.
    The admins are emailed what the person leaves to be handed over; that work is returned."""
    from waiverdesk.api.models import ApiToken
    from waiverdesk.notifications import services as notify

    user = person(username)
    if by == username:
        raise Denied("self", "you cannot deactivate yourself; ask another admin")
    now = clock.now()
    work = open_work(user)
    with transaction.atomic():
        if not User.objects.filter(pk=user.pk, is_active=True).update(is_active=False):
            return work  # already inactive: nothing to do, nothing to record again
        user.is_active = False
        revoked = ApiToken.objects.filter(user=user, revoked_at=None).update(revoked_at=now)
        ended = end_sessions(user)
        audit.append(by, "user.deactivated", user,
                     {"username": username, "reason": reason, "tokens_revoked": revoked,
                      "sessions_ended": ended, "left": [str(w) for w in work]},
                     object_ref=username, at=now)  # fmt: skip
        if work:
            lines = "\n".join(f"- {w}" for w in work)
            for admin in notify.holders("admin"):
                if admin.email and admin.pk != user.pk:
                    notify.queue_email(
                        admin.email,
                        f"{username} has left work to hand over",
                        f"{username} was deactivated by {by}. They are answerable for:\n\n"
                        f"{lines}\n\nHand each over on {username}'s page under People.",
                        "user.deactivated",
                        now,
                        object_ref=username,
                    )
    return work


def reactivate(username: str, by: str = "system") -> User:
    """Let `username` sign in again (their old API tokens stay revoked)."""
    user = person(username)
    with transaction.atomic():
        if User.objects.filter(pk=user.pk, is_active=False).update(is_active=True):
            user.is_active = True
            audit.append(by, "user.reactivated", user, {"username": username},
                         object_ref=username)  # fmt: skip
    return user


def end_sessions(user: User) -> int:
    """End every signed-in session of `user` (the session table is read whole: sessions
    are kept no longer than the idle timeout, so it stays small)."""
    mine = [
        s.session_key
        for s in Session.objects.filter(expire_date__gt=clock.now()).iterator()
        if s.get_decoded().get("_auth_user_id") == str(user.pk)
    ]
    Session.objects.filter(session_key__in=mine).delete()
    return len(mine)


def describe(user: User) -> str:
    """One line for the command line: name, roles, and whether they may sign in."""
    roles = ", ".join(sorted(roles_of(user))) or "-"
    return f"{user.username:20} {roles}{'' if user.is_active else '  (deactivated)'}"


def hand_over(username: str, to: str, by: str) -> tuple[list[Work], list[tuple[Work, str]]]:
    """Give what `username` is answerable for to `to`: each item in its own transaction with
    its audit entry, each checked as if `to` were chosen for it now (a control owner fit for
    the request, a customer's new account owner through the customer's own change). Returns
    (handed over, refused with why)."""
    leaving, taking = person(username), person(to)
    if leaving == taking:
        raise Invalid([Problem("to", "same_person", "choose someone else to hand over to")])
    if not taking.is_active:
        raise Invalid([Problem("to", "inactive", f"{to} is deactivated")])
    done, refused = [], []
    for work in open_work(leaving):
        try:
            with transaction.atomic():
                _hand_over_one(work, leaving, taking, by)
            done.append(work)
        except (Denied, Invalid) as exc:
            refused.append((work, str(exc)))
    return done, refused


def _hand_over_one(work: Work, leaving: User, taking: User, by: str) -> None:
    from waiverdesk.waivers.models import Condition, Task, Waiver
    from waiverdesk.waivers.services.separation import require_fit_control_owner

    from .services import update_customer

    if work.kind == "account":
        update_customer(work.ref, {"account_owner": taking.username}, by=by)
        return
    waiver = Waiver.objects.select_for_update().get(reference=work.ref)
    if work.kind == "control":
        waiver.control_owner = taking
        require_fit_control_owner(waiver, tuple(waiver.current_route()))
        waiver.save(update_fields=["control_owner"])
    else:
        model = Task if work.kind == "task" else Condition
        model.objects.filter(pk=work.pk, owner=leaving).update(owner=taking)
    audit.append(by, "work.handed_over", waiver,
                 {"what": work.what, "from": leaving.username, "to": taking.username})  # fmt: skip
