"""Users with roles, customers and products: the reference data requests point at."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.policy import FIXED_ROLES
from waiverdesk.policies import services as policies

from .models import Customer, Product


def roles_of(user: User) -> frozenset[str]:
    """The roles a user holds (cached on the user object for the request)."""
    if not hasattr(user, "_waiverdesk_roles"):
        user._waiverdesk_roles = frozenset(user.groups.values_list("name", flat=True))
    return user._waiverdesk_roles


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
    """Create a user, or give an existing one these roles."""
    problems = []
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        problems.append(Problem("username", "invalid", "use letters, digits, '.', '_' or '-'"))
    unknown = sorted(set(roles) - known_roles())
    if unknown:
        problems.append(
            Problem(
                "roles",
                "unknown_role",
                f"no role named {', '.join(unknown)}; known: {', '.join(sorted(known_roles()))}",
            )
        )
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        audit.append(
            by,
            "user.added" if created else "user.roles_added",
            user,
            {"username": username, "roles": sorted(roles)},
            object_ref=username,
        )
    return user


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
        audit.append(by, "user.password_set", user, {"username": username}, object_ref=username)
    return user


def add_customer(
    external_id: str,
    name: str,
    region: str = "",
    account_owner: str = "",
    by: str = "system",
    contact_email: str = "",
) -> Customer:
    """Create or update a customer by its external id."""
    owner = _user_or_problem(account_owner, "account_owner")
    if not external_id:
        raise Invalid([Problem("external_id", "required", "a customer needs its external id")])
    if contact_email:
        try:
            validate_email(contact_email)
        except ValidationError:
            raise Invalid([Problem("contact_email", "invalid", "not an email address")]) from None
    with transaction.atomic():
        customer, created = Customer.objects.update_or_create(
            external_id=external_id,
            defaults={
                "name": name or external_id,
                "region": region,
                "account_owner": owner,
                "contact_email": contact_email,
            },
        )
        audit.append(
            by,
            "customer.added" if created else "customer.changed",
            customer,
            {"name": customer.name, "region": region, "account_owner": account_owner},
        )
    return customer


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


def _user_or_problem(username: str, field: str) -> User | None:
    if not username:
        return None
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise Invalid([Problem(field, "unknown_user", f"no active user named '{username}'")])
    return user
