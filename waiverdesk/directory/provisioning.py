"""What the company's identity systems say of people, applied here: the identity provider
at each sign-in (who they are, their groups), and the directory over SCIM (people and
groups created, changed and removed). Groups give roles through one map,
WAIVERDESK_OIDC_ROLE_MAP, whichever door they come through; every change is made with
`people`'s functions and audited."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem

from .models import Profile, ProvisionedGroup
from .people import deactivate, follow_roles, person
from .services import add_user, known_roles, name_problems, too_long
from .signing_in import normal


def role_map() -> dict[str, set[str]]:
    """The identity provider's groups and the roles each gives, from "group=role,…" (the
    setting WAIVERDESK_OIDC_ROLE_MAP; several groups may give one role, a group several)."""
    found: dict[str, set[str]] = {}
    for pair in settings.OIDC_ROLE_MAP.split(","):
        group, _, role = pair.partition("=")
        if group.strip() and role.strip():
            found.setdefault(group.strip(), set()).add(role.strip())
    return found


def roles_for_groups(groups: list[str]) -> set[str]:
    """The roles `groups` give (those the map names that are roles here)."""
    mapping = role_map()
    return {role for g in groups for role in mapping.get(g, ())} & known_roles()


def from_identity_provider(subject: str, username: str, email: str, groups: list[str]) -> User:
    """The person the identity provider vouches for, their roles made to follow their
    groups (audited). Found by the provider's subject; at the first sign-in, a local account
    of the same name is joined to it, or the person is created. Refused when deactivated
    here, or when the name is another subject's."""
    with transaction.atomic():
        profile = Profile.objects.select_related("user").filter(idp_subject=subject).first()
        if profile is not None:
            user = profile.user
        else:
            user = User.objects.filter(username=normal(username)).first()
            linked = Profile.objects.filter(user=user).exclude(idp_subject=None)
            if user is not None and linked.exists():
                taken = f"the name {user.username} belongs to another company account"
                raise Denied("identity_taken", taken)
            if user is None:
                user = add_user(username, [], email, by="identity provider")
            Profile.objects.update_or_create(user=user, defaults={"idp_subject": subject})
            audit.append("identity provider", "user.identity_linked", user,
                         {"username": user.username, "subject": subject},
                         object_ref=user.username)  # fmt: skip
        if not user.is_active:
            raise Denied("deactivated", "your account here is deactivated; ask an admin")
        if email and user.email != email and not too_long(User, {"email": email}):
            User.objects.filter(pk=user.pk).update(email=email)
            user.email = email
        follow_roles(user, roles_for_groups(groups), by="identity provider")
    return user


def provision(
    user: User | None,
    username: str,
    email: str,
    given_name: str,
    family_name: str,
    external_id: str,
    attributes: dict,
    by: str,
) -> User:
    """Create (`user` None) or change a person as the company's directory describes them;
    `attributes` are what it says beyond the user's own fields (kept as said). A rename is
    checked as a new name is, and may not take another person's name."""
    labels = {"username": "userName", "email": "emails", "scim_external_id": "externalId"}
    problems = too_long(User, {"username": username, "email": email}, labels) + too_long(
        Profile, {"scim_external_id": external_id}, labels)  # fmt: skip
    if problems:
        raise Invalid(problems)
    if user is None:
        user = add_user(username, [], email, by=by)
    elif normal(username) != user.username:
        check = normal(username)
        if User.objects.filter(username=check).exclude(pk=user.pk).exists():
            raise Invalid([Problem("userName", "taken", f"a user named {check} exists")])
        if problems := name_problems(check, but=user):  # as a new name is checked
            raise Invalid(problems)
        User.objects.filter(pk=user.pk).update(username=check)
        # The new name is theirs by now (their pseudonym in the trail); the old one is no
        # one's, so it is sealed under their key.
        audit.append(by, "user.renamed", user, {"former_name": user.username, "to": check},
                     object_ref=check)  # fmt: skip
        user.username = check
    changed = {"email": email, "first_name": given_name[:150], "last_name": family_name[:150]}
    if any(getattr(user, k) != v for k, v in changed.items()):
        User.objects.filter(pk=user.pk).update(**changed)
        for key, value in changed.items():
            setattr(user, key, value)
    Profile.objects.update_or_create(
        user=user,
        defaults={
            "scim_external_id": external_id,
            "scim_attributes": attributes,
            "scim_removed": False,
        },
    )
    return user


def remove_provisioned(username: str, by: str) -> None:
    """The directory deleted the person: deactivated (sessions and tokens ended, work named
    to the admins), out of its groups and no longer listed to it; kept here for the trail."""
    user = person(username)
    deactivate(username, by=by, reason="removed from the directory")
    for group in user.provisioned_groups.all():
        group.members.remove(user)
    follow_roles(user, set(), by=by)
    Profile.objects.update_or_create(user=user, defaults={"scim_removed": True})
    audit.append(by, "user.deprovisioned", user, {"username": username}, object_ref=username)


def provision_group(group, display_name: str, external_id: str, members: list[User], by: str):
    """Create or change a directory group; every person who joins or leaves it gets the
    roles their groups now give."""
    given = {"display_name": display_name, "external_id": external_id}
    labels = {"display_name": "displayName", "external_id": "externalId"}
    problems = too_long(ProvisionedGroup, given, labels)
    if problems:
        raise Invalid(problems)
    before = set(group.members.all()) if group is not None else set()
    if group is None:
        group = ProvisionedGroup.objects.create(display_name=display_name, external_id=external_id)
    else:
        group.display_name, group.external_id = display_name, external_id
        group.save()
    group.members.set(members)
    audit.append(by, "group.provisioned", group,
                 {"group": display_name, "members": sorted(u.username for u in members)},
                 object_type="group", object_ref=display_name)  # fmt: skip
    for user in before | set(members):
        _roles_from_directory(user, by)
    return group


def remove_group(group, by: str) -> None:
    members = list(group.members.all())
    name = group.display_name
    group.delete()
    audit.append(by, "group.removed", None, {"group": name}, object_type="group",
                 object_ref=name)  # fmt: skip
    for user in members:
        _roles_from_directory(user, by)


def _roles_from_directory(user: User, by: str) -> None:
    groups = list(user.provisioned_groups.values_list("display_name", flat=True))
    follow_roles(user, roles_for_groups(groups), by=by)
