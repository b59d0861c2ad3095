"""SCIM 2.0 provisioning (RFC 7643/7644) at /scim/v2/: the company's directory creates,
changes, deactivates and removes people here, and keeps its groups, whose members hold the
roles WAIVERDESK_OIDC_ROLE_MAP gives the group's name (as at single sign-on).

Payloads are read, checked, filtered and patched with scim2-models, the python-scim
project's models of the RFCs (django-scim2 would need SCIM columns on Django's own user
table); every change goes through `people`, as from any other door. A token with the `scim`
scope, held by an admin, is needed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ConflictException,
    Context,
    Error,
    ETag,
    Filter,
    Group,
    GroupMember,
    GroupMembership,
    InvalidValueException,
    ListResponse,
    Meta,
    NotFoundException,
    Patch,
    PatchOp,
    ResourceType,
    SCIMException,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
)
from scim2_models.annotations import Mutability, Required, Uniqueness
from scim2_models.attributes import ComplexAttribute
from scim2_models.resources.resource import Resource
from scim2_models.urn import URN

from waiverdesk.api import services as tokens
from waiverdesk.core.errors import Denied, Invalid

from . import people, provisioning
from .models import ProvisionedGroup
from .services import roles_of


class PersonName(ComplexAttribute):
    given_name: str | None = None
    family_name: str | None = None


class PersonEmail(ComplexAttribute):
    value: str | None = None
    type: str | None = None
    primary: bool | None = None


class Person(Resource):
    """The core User schema, narrowed to what is kept here (a client that reads the
    published schema is offered nothing that would be dropped)."""

    __schema__ = URN("urn:ietf:params:scim:schemas:core:2.0:User")

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    name: PersonName | None = None
    display_name: str | None = None
    active: bool | None = None
    emails: list[PersonEmail] | None = None
    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None


CONTENT_TYPE = "application/scim+json"
MOST = 200  # resources in one page


def _answer(body: dict | None, status: int = 200, location: str = "") -> HttpResponse:
    response = HttpResponse(json.dumps(body) if body is not None else b"", status=status,
                            content_type=CONTENT_TYPE)  # fmt: skip
    if location:
        response["Location"] = location
    return response


def _error(exc: SCIMException) -> HttpResponse:
    return _answer(exc.to_error().model_dump(), exc.status)


def _not_allowed(request: HttpRequest) -> HttpResponse:
    said = Error(status=405, detail=f"{request.method} is not offered here")
    return _answer(said.model_dump(), 405)


def endpoint(view: Callable) -> Callable:
    """A SCIM endpoint: the bearer token checked (scim scope, an admin's), every refusal a
    SCIM error, every change in one transaction."""

    @csrf_exempt
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        token = tokens.authenticate(header[7:].strip()) if header[:7].lower() == "bearer " else None
        if token is None or "scim" not in token.scopes or "admin" not in roles_of(token.user):
            return _error(UnauthorizedException(
                detail="a bearer token with the scim scope, of an admin, is needed"))  # fmt: skip
        request.scim_base = request.build_absolute_uri("/scim/v2")
        try:
            with transaction.atomic():
                return view(request, *args, **kwargs)
        except SCIMException as exc:
            return _error(exc)
        except ValidationError as exc:
            return _error(InvalidValueException(detail=_said(exc)))
        except Invalid as exc:
            return _error(InvalidValueException(detail=str(exc)))
        except Denied as exc:
            return _error(ConflictException(detail=exc.message))
        except (ValueError, TypeError) as exc:
            return _error(InvalidValueException(detail=str(exc)))

    return wrapped


def _said(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidValueException(detail="the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidValueException(detail="the body must be a JSON object")
    return body


# People


def _user_resource(request: HttpRequest, user: User) -> Person:
    profile = getattr(user, "profile", None)  # read with the user (_listed_people)
    said = profile.scim_attributes if profile else {}
    groups = sorted(user.provisioned_groups.all(), key=lambda g: g.display_name)
    emails = said.get("emails") or ([{"value": user.email, "primary": True}] * bool(user.email))
    # A client that removed `active` finds it left out (the person stays active).
    removed = "active" in said and said["active"] is None and user.is_active
    return Person(
        id=str(user.pk),
        external_id=(profile.scim_external_id or None) if profile else None,
        user_name=user.username,
        name=PersonName(given_name=user.first_name or None, family_name=user.last_name or None),
        display_name=said.get("displayName", user.username),
        emails=[PersonEmail.model_validate(e) for e in emails] or None,
        active=None if removed else user.is_active,
        groups=[GroupMembership(value=f"g{g.pk}", display=g.display_name) for g in groups] or None,
        meta=Meta(
            resource_type="User",
            created=user.date_joined,
            last_modified=user.date_joined,
            location=f"{request.scim_base}/Users/{user.pk}",
        ),  # fmt: skip
    )


def _listed_people():
    return (User.objects.exclude(profile__scim_removed=True).select_related("profile")
            .prefetch_related("provisioned_groups").order_by("pk"))  # fmt: skip


def _person(pk: str) -> User:
    user = _listed_people().filter(pk=int(pk)).first() if pk.isdigit() else None
    if user is None:
        raise NotFoundException(detail=f"no user {pk}")
    return user


def _asked(request: HttpRequest) -> SearchRequest:
    """What the client asks of a read: `attributes`, `excludedAttributes` (comma-separated),
    `filter`, `startIndex`, `count`; from the address, or from the body of a .search."""
    if request.method == "POST":
        return SearchRequest[Person | Group].model_validate(
            _body(request), scim_ctx=Context.SEARCH_REQUEST)  # fmt: skip
    given = {"attributes": request.GET.get("attributes"),
             "excludedAttributes": request.GET.get("excludedAttributes"),
             "filter": request.GET.get("filter"), "startIndex": request.GET.get("startIndex"),
             "count": request.GET.get("count")}  # fmt: skip
    for name in ("attributes", "excludedAttributes"):
        given[name] = [a.strip() for a in given[name].split(",")] if given[name] else None
    return SearchRequest[Person | Group].model_validate(
        {k: v for k, v in given.items() if v not in (None, "")},
        scim_ctx=Context.SEARCH_REQUEST)  # fmt: skip


def _dump(resource, context=Context.RESOURCE_QUERY_RESPONSE, asked=None) -> dict:
    return resource.model_dump(scim_ctx=context, response_parameters=asked)


def _apply_user(user: User | None, resource: Person) -> User:
    """Create or change the person `resource` describes, through `people`."""
    emails = [e.model_dump(exclude_none=True) for e in resource.emails or []]
    primary = next((e["value"] for e in emails if e.get("primary")), None)
    user = provisioning.provision(
        user,
        username=resource.user_name,
        email=primary or next((e.get("value") for e in emails), "") or "",
        given_name=(resource.name.given_name if resource.name else None) or "",
        family_name=(resource.name.family_name if resource.name else None) or "",
        external_id=resource.external_id or "",
        attributes={
            "displayName": resource.display_name,
            "emails": emails,
            "active": resource.active,
        },
        by="scim",
    )
    if resource.active is False and user.is_active:
        people.deactivate(user.username, by="scim", reason="deactivated in the directory")
    elif resource.active is not False and not user.is_active:
        people.reactivate(user.username, by="scim")
    return User.objects.get(pk=user.pk)


def _listing(request: HttpRequest, rows, resource_of) -> HttpResponse:
    """A page of the resources the `filter` matches (startIndex is 1-based, count ≤ MOST)."""
    asked = _asked(request)
    start = max(1, asked.start_index or 1)
    count = min(MOST, max(0, MOST if asked.count is None else asked.count))
    resources = [resource_of(row) for row in rows]
    if asked.filter is not None:
        resources = [r for r in resources if asked.filter.match(r)]
    page = resources[start - 1 : start - 1 + count]
    listed = ListResponse[Person | Group](total_results=len(resources), start_index=start,
                                          items_per_page=len(page), resources=page)  # fmt: skip
    return _answer(_dump(listed, asked=asked))


# Groups


def _group_resource(request: HttpRequest, group: ProvisionedGroup) -> Group:
    members = group.members.order_by("username")
    return Group(
        id=f"g{group.pk}",  # apart from people's ids, for a search of both at once
        external_id=group.external_id or None,
        display_name=group.display_name,
        members=[
            GroupMember(
                value=str(u.pk),
                type="User",
                ref=f"{request.scim_base}/Users/{u.pk}",
                display=group.member_names.get(str(u.pk), u.username),
            )
            for u in members
        ]
        or None,
        meta=Meta(
            resource_type="Group",
            created=group.created_at,
            last_modified=group.updated_at,
            location=f"{request.scim_base}/Groups/g{group.pk}",
        ),  # fmt: skip
    )


def _group(pk: str) -> ProvisionedGroup:
    number = pk.removeprefix("g")
    group = ProvisionedGroup.objects.filter(pk=int(number)).first() if number.isdigit() else None
    if group is None:
        raise NotFoundException(detail=f"no group {pk}")
    return group


def _apply_group(group: ProvisionedGroup | None, resource: Group) -> ProvisionedGroup:
    members = []
    for member in resource.members or []:
        value = str(member.value)
        user = _listed_people().filter(pk=int(value)).first() if value.isdigit() else None
        if user is None:
            raise InvalidValueException(detail=f"members: no user {member.value}")
        members.append(user)
    group = provisioning.provision_group(
        group, resource.display_name, resource.external_id or "", members, by="scim"
    )
    group.member_names = {str(m.value): m.display for m in resource.members or [] if m.display}
    group.save(update_fields=["member_names"])
    return group


@dataclass(frozen=True)
class Kind:
    """What the endpoints need of one resource type."""

    model: type
    rows: Callable[[], QuerySet]
    one: Callable[[str], object]  # the row of an id, or NotFoundException
    resource: Callable[[HttpRequest, object], object]
    apply: Callable[[object | None, object], object]  # create (None) or change a row
    remove: Callable[[object], None]
    taken: Callable[[object], str]  # why a new resource cannot be made, or ""


def _taken_name(resource: Person) -> str:
    named = _listed_people().filter(username__iexact=resource.user_name).exists()
    return f"a user named {resource.user_name} exists" if named else ""


def _taken_group(resource: Group) -> str:
    named = ProvisionedGroup.objects.filter(display_name=resource.display_name).exists()
    return f"a group named {resource.display_name} exists" if named else ""


PEOPLE = Kind(
    Person, _listed_people, _person, _user_resource,
    lambda user, r: _apply_user(user or User.objects.filter(username=r.user_name).first(), r),
    lambda user: provisioning.remove_provisioned(user.username, by="scim"), _taken_name,
)  # fmt: skip
GROUPS = Kind(
    Group, lambda: ProvisionedGroup.objects.order_by("pk"), _group, _group_resource,
    _apply_group, lambda group: provisioning.remove_group(group, by="scim"), _taken_group,
)  # fmt: skip


def _resources(kind: Kind) -> Callable:
    """The endpoint of one resource type: list, search, create; read, replace, patch and
    delete one."""

    @endpoint
    def view(request: HttpRequest, pk: str = "") -> HttpResponse:
        def shown(row, context=Context.RESOURCE_QUERY_RESPONSE, asked=None):
            return _dump(kind.resource(request, row), context, asked)

        def given(context: Context):
            return kind.model.model_validate(_body(request), scim_ctx=context)

        if pk == ".search" and request.method == "POST" or not pk and request.method == "GET":
            return _listing(request, kind.rows(), lambda row: kind.resource(request, row))
        if not pk and request.method == "POST":
            resource = given(Context.RESOURCE_CREATION_REQUEST)
            if why := kind.taken(resource):
                raise ConflictException(detail=why)
            made = kind.resource(request, kind.apply(None, resource))
            return _answer(_dump(made, Context.RESOURCE_CREATION_RESPONSE), 201,
                           made.meta.location)  # fmt: skip
        if not pk:
            return _not_allowed(request)
        row = kind.one(pk)
        if request.method == "GET":
            return _answer(shown(row, asked=_asked(request)))
        if request.method == "PUT":
            return _answer(shown(kind.apply(row, given(Context.RESOURCE_REPLACEMENT_REQUEST))))
        if request.method == "PATCH":
            ops = PatchOp[kind.model].model_validate(
                _body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST
            )
            resource = kind.resource(request, row)
            ops.patch(resource)
            return _answer(shown(kind.apply(row, resource)))
        if request.method == "DELETE":
            kind.remove(row)
            return _answer(None, 204)
        return _not_allowed(request)

    return view


users = _resources(PEOPLE)
groups = _resources(GROUPS)


# What the service offers


@endpoint
def service_provider_config(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _not_allowed(request)
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MOST),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A waiverdesk API token with the scim scope, of an admin",
            )
        ],  # fmt: skip
        meta=Meta(
            resource_type="ServiceProviderConfig",
            location=f"{request.scim_base}/ServiceProviderConfig",
        ),  # fmt: skip
    )
    return _answer(_dump(config))


_MODELS = {"User": Person, "Group": Group}


@endpoint
def resource_types(request: HttpRequest, name: str = "") -> HttpResponse:
    if request.method != "GET":
        return _not_allowed(request)
    found = {n: ResourceType.from_resource(m) for n, m in _MODELS.items()}
    if name:
        if name not in found:
            raise NotFoundException(detail=f"no resource type {name}")
        return _answer(_dump(found[name]))
    listed = ListResponse[ResourceType](total_results=len(found), start_index=1,
                                        items_per_page=len(found),
                                        resources=list(found.values()))  # fmt: skip
    return _answer(_dump(listed))


@endpoint
def schemas(request: HttpRequest, urn: str = "") -> HttpResponse:
    if request.method != "GET":
        return _not_allowed(request)
    found = {s.id: s for s in (m.to_schema() for m in _MODELS.values())}
    if urn:
        if urn not in found:
            raise NotFoundException(detail=f"no schema {urn}")
        return _answer(_dump(found[urn]))
    listed = ListResponse[type(next(iter(found.values())))](
        total_results=len(found), start_index=1, items_per_page=len(found),
        resources=list(found.values()))  # fmt: skip
    return _answer(_dump(listed))


@endpoint
def search_all(request: HttpRequest) -> HttpResponse:
    """POST /.search: people and groups alike."""
    if request.method != "POST":
        return _not_allowed(request)
    rows = [*_listed_people(), *ProvisionedGroup.objects.order_by("pk")]
    return _listing(request, rows, lambda row: _user_resource(request, row)
                    if isinstance(row, User) else _group_resource(request, row))  # fmt: skip


@endpoint
def unknown(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise NotFoundException(detail=f"nothing at /scim/v2/{rest}")
