"""Users with roles, customers and products: the reference data requests point at."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core import formatting
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.policy import FIXED_ROLES
from waiverdesk.policies import services as policies

from . import signing_in
from .models import Customer, Product, Profile


def roles_of(user: User) -> frozenset[str]:
    """The roles a user holds (cached on the user object for the request)."""
    if not hasattr(user, "_waiverdesk_roles"):
        user._waiverdesk_roles = frozenset(user.groups.values_list("name", flat=True))
    return user._waiverdesk_roles


def holding(roles) -> list[User]:
    """The active people who hold any of `roles`, each with their roles read (one query)."""
    people = list(User.objects.filter(groups__name__in=roles, is_active=True).distinct()
                  .order_by("username").prefetch_related("groups"))  # fmt: skip
    for user in people:
        user._waiverdesk_roles = frozenset(g.name for g in user.groups.all())
    return people


def require_role(user: User, roles: set[str], what: str) -> None:
    """Refuse (Denied) unless `user` holds one of `roles`."""
    if not roles_of(user) & roles:
        raise Denied("missing_role", f"only {' or '.join(sorted(roles))} may {what}")


def known_roles() -> set[str]:
    """The fixed roles plus the approver roles of the active policy."""
    try:
        approver_roles = policies.compiled(policies.active_version()).approver_roles
    except policies.NoActivePolicy:
        approver_roles = []
    return {*FIXED_ROLES, *approver_roles}


def add_user(username: str, roles: list[str], email: str = "", by: str = "system") -> User:
    """Create a user, or give an existing one these roles. The name is stored as NFKC, and a
    new name that looks like an existing one (Cyrillic 'а' for Latin 'a', 'Rita' for 'rita')
    is refused."""
    return add_users({username: roles}, {username: email}, by)[signing_in.normal(username)]


def add_users(
    people: dict[str, list[str]], emails: dict[str, str] | None = None, by: str = "system"
) -> dict[str, User]:
    """`add_user` for several people at once (by stored name): each checked as it checks one,
    every problem told at once, each with their own audit entry, all or none; in a few
    statements, however many they are (a new workspace's people)."""
    emails = emails or {}
    wanted = {signing_in.normal(n): (roles, emails.get(n, "")) for n, roles in people.items()}
    existing = {u.username: u for u in User.objects.filter(username__in=wanted)}
    names = list(User.objects.values_list("username", flat=True))  # for look-alikes
    known, problems = known_roles(), []
    for name, (roles, email) in wanted.items():
        problems += too_long(User, {"email": email})
        if unknown := sorted(set(roles) - known):
            said = f"no role named {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            problems.append(Problem("roles", "unknown_role", said))
        if name not in existing:
            problems += name_problems(name, others=names)
            names.append(name)
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        new = User.objects.bulk_create(
            User(username=n, email=e) for n, (_r, e) in wanted.items() if n not in existing
        )
        for name, user in existing.items():
            if (email := wanted[name][1]) and user.email != email:
                user.email = email
                user.save(update_fields=["email"])
        users = {**existing, **{u.username: u for u in new}}
        roles = {r for rs, _e in wanted.values() for r in rs}
        groups = {g.name: g for g in Group.objects.filter(name__in=roles)}
        groups.update((g.name, g) for g in Group.objects.bulk_create(
            Group(name=r) for r in sorted(roles - set(groups))))  # fmt: skip
        User.groups.through.objects.bulk_create(
            [User.groups.through(user=users[n], group=groups[r])
             for n, (rs, _e) in wanted.items() for r in rs],
            ignore_conflicts=True,  # a role an existing user holds already
        )  # fmt: skip
        audit.append_many(
            [(by, "user.roles_added" if n in existing else "user.added", "user", n,
              {"username": n, "roles": sorted(rs)}, clock.now()) for n, (rs, _e) in wanted.items()]
        )  # fmt: skip
    return users


def name_problems(username: str, but: User | None = None, others=None) -> list[Problem]:
    """What is wrong with `username` (stored as NFKC) as a new name, or as the new name of
    `but`: letters, digits, '.', '_' or '-', short enough, and not a look-alike of another
    person's (Cyrillic 'а' for Latin 'a', 'Rita' for 'rita'; `others`: everyone's names,
    when the caller has them)."""
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        return [Problem("username", "invalid", "use letters, digits, '.', '_' or '-'")]
    if problems := too_long(User, {"username": username}):
        return problems
    shape = signing_in.skeleton(username)
    if others is None:
        people = User.objects.exclude(pk=but.pk) if but else User.objects.all()
        others = people.values_list("username", flat=True).iterator()
    for other in others:
        if signing_in.skeleton(other) == shape:
            return [Problem("username", "look_alike",
                            f"'{username}' looks like the existing user '{other}'")]  # fmt: skip
    return []


def set_password(username: str, password: str, by: str = "system") -> User:
    """Let a user sign in to the web UI with `password` (stored as a salted hash)."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise Invalid([Problem("username", "unknown_user", f"no user named '{username}'")])
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise Invalid([Problem("password", "weak", m) for m in error.messages]) from None
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        Profile.objects.filter(user=user).update(must_change_password=False)
        audit.append(by, "user.password_set", user, {"username": username}, object_ref=username)
    return user


CUSTOMER_FIELDS = ("name", "region", "account_owner", "contact_email")


def add_customer(
    external_id: str,
    name: str,
    region: str = "",
    account_owner: str = "",
    by: str = "system",
    contact_email: str = "",
) -> Customer:
    """Create a customer; one that exists already is refused (change it with
    `update_customer`, which says what changed and re-checks its open requests)."""
    if not external_id:
        raise Invalid([Problem("external_id", "required", "a customer needs its external id")])
    fields = _customer_fields(
        {"name": name or external_id, "region": region, "account_owner": account_owner,
         "contact_email": contact_email}
    )  # fmt: skip
    with transaction.atomic():
        if Customer.objects.filter(external_id=external_id).exists():
            raise Denied(
                "already_exists",
                f"a customer with external id '{external_id}' exists; change it with an update",
            )
        customer = Customer.objects.create(external_id=external_id, **fields)
        audit.append(
            by,
            "customer.added",
            customer,
            {"name": customer.name, "region": region, "account_owner": account_owner},
        )
    return customer


def update_customer(external_id: str, changes: dict, by: str = "system") -> Customer:
    """Change only the fields given, audited with their values before and after. A new account
    owner voids their own approvals on the customer's requests under review (A4)."""
    unknown = sorted(set(changes) - set(CUSTOMER_FIELDS))
    if unknown:
        raise Invalid(
            [Problem(k, "unknown_field", "is not a field of a customer") for k in unknown]
        )
    fields = _customer_fields(changes)
    with transaction.atomic():
        customer = (
            Customer.objects.select_for_update(of=("self",))
            .select_related("account_owner")
            .filter(external_id=external_id)
            .first()
        )
        if customer is None:
            raise Invalid(
                [Problem("external_id", "unknown_customer", f"no customer '{external_id}'")]
            )
        before = _customer_values(customer)
        for name, value in fields.items():
            setattr(customer, name, value)
        after = _customer_values(customer)
        changed = [k for k in CUSTOMER_FIELDS if before[k] != after[k]]
        if not changed:
            return customer
        customer.save()
        voided = []
        if "account_owner" in changed and customer.account_owner is not None:
            # Waivers build on the directory, so the directory reaches them only here.
            from waiverdesk.waivers.services import void_conflicted_approvals

            voided = void_conflicted_approvals(customer.pk, customer.account_owner, by, clock.now())
        audit.append(
            by,
            "customer.changed",
            customer,
            {"before": {k: before[k] for k in changed}, "after": {k: after[k] for k in changed},
             "approvals_voided_on": voided},
        )  # fmt: skip
    return customer


def _customer_fields(values: dict) -> dict:
    """Checked model values for the customer fields in `values`, every problem at once."""
    problems, fields = [], {}
    for name in ("name", "region", "contact_email"):
        if name in values:
            fields[name] = str(values[name] or "").strip()
    limits = {"name": 200, "region": 16, "contact_email": 254}
    for name, limit in limits.items():
        if len(fields.get(name, "")) > limit:
            problems.append(Problem(name, "too_long", f"at most {limit} characters"))
    if "name" in values and not fields["name"]:
        problems.append(Problem("name", "required", "a customer needs a name"))
    if fields.get("contact_email"):
        try:
            validate_email(fields["contact_email"])
        except ValidationError:
            problems.append(Problem("contact_email", "invalid", "not an email address"))
    if "account_owner" in values:
        username = values["account_owner"] or ""
        owner = User.objects.filter(username=username, is_active=True).first()
        if username and owner is None:
            problems.append(
                Problem("account_owner", "unknown_user", f"no active user named '{username}'")
            )
        fields["account_owner"] = owner
    if problems:
        raise Invalid(problems)
    return fields


def _customer_values(customer: Customer) -> dict:
    owner = customer.account_owner
    return {
        "name": customer.name,
        "region": customer.region,
        "account_owner": owner.username if owner else "",
        "contact_email": customer.contact_email,
    }


def add_product(
    code: str, name: str, family: str, risk_class: str = "low", by: str = "system"
) -> Product:
    """Create or update a product by its code."""
    problems = []
    if not code:
        problems.append(Problem("code", "required", "a product needs its code"))
    if not family:
        problems.append(Problem("family", "required", "a product needs its family"))
    if risk_class not in Product.RiskClass.values:
        problems.append(Problem("risk_class", "invalid", "must be low, medium or high"))
    problems += too_long(Product, {"code": code, "name": name, "family": family})
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        product, created = Product.objects.update_or_create(
            code=code, defaults={"name": name or code, "family": family, "risk_class": risk_class}
        )
        audit.append(
            by,
            "product.added" if created else "product.changed",
            product,
            {"name": product.name, "family": family, "risk_class": risk_class},
        )
    return product


def set_reading(user: User, locale: str, time_zone: str) -> Profile:
    """How `user` reads figures and moments: a CLDR locale and an IANA time zone (blank:
    follow the browser). Invalid at each field that names neither."""
    locale, time_zone = (locale or "").strip(), (time_zone or "").strip()
    problems = []
    if locale and len(formatting.known_locale(locale) or "x" * 99) > 20:
        message = f"Format: '{locale[:40]}' is not a locale we know; choose one from the list"
        problems.append(Problem("locale", "invalid", message))
    if time_zone and not formatting.known_zone(time_zone):
        message = f"Time zone: '{time_zone[:64]}' is not a time zone, like Europe/Berlin"
        problems.append(Problem("time_zone", "invalid", message))
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        profile, _ = Profile.objects.get_or_create(user=user)
        profile.locale = formatting.known_locale(locale) if locale else ""
        profile.time_zone = time_zone
        profile.save()
        audit.append(user.username, "user.settings_changed", user,
                     {"locale": profile.locale, "time_zone": profile.time_zone},
                     object_ref=user.username)  # fmt: skip
    return profile


def too_long(model, values: dict, labels: dict | None = None) -> list[Problem]:
    """A problem for each value longer than its column holds, named by `labels` (what the
    caller calls the field) where given."""
    return [
        Problem((labels or {}).get(name, name), "too_long", f"at most {limit} characters")
        for name, value in values.items()
        if (limit := model._meta.get_field(name).max_length) and len(value or "") > limit
    ]
