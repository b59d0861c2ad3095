"""Personal data erased on request or when the policy's retention says (SPEC P2), unless a
legal hold keeps it; the audit trail still verifies afterwards.

Erasing a person destroys their key (what the trail sealed under it reads "erased on DATE"),
renames them to their pseudonym, and replaces their name, address and comments wherever
the live tables and the data directory's mail hold them. Erasing a contact (an address that
is no one's user) does the same for the address. Purging an ended request removes its free
text and files, and keeps its figures and references."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.db.models import Max, Q
from django.db.models.functions import Cast

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.audit import subjects
from waiverdesk.audit.models import Subject
from waiverdesk.core.errors import Invalid, Problem
from waiverdesk.core.lifecycle import TERMINAL
from waiverdesk.directory import people
from waiverdesk.directory.models import Customer, Profile
from waiverdesk.directory.services import require_role
from waiverdesk.policies import services as policies
from waiverdesk.waivers import attachments
from waiverdesk.waivers.models import Approval, SentNotice, Task, Waiver

from .models import LegalHold, Purge


def erased_on(now: datetime) -> str:
    """What an erased field reads."""
    return f"erased on {now:%Y-%m-%d}"


_SHORTEST_TEXT = 8  # a comment shorter than this is not looked for elsewhere ("OK", "fine")


# -- Finding who is meant ------------------------------------------------------------------


def _person(name: str) -> User | None:
    name = name.strip()
    if not name:
        return None
    found = User.objects.filter(username=name).first()
    if found is None and "@" in name:
        found = User.objects.filter(email__iexact=name).first()
    return found


def _known_contact(address: str) -> bool:
    """Whether `address` is a customer's contact, or named in the trail."""
    address = address.strip().lower()
    return "@" in address and (
        Customer.objects.filter(contact_email__iexact=address).exists()
        or Subject.objects.filter(user=None, email=address).exists()
    )


HOLDERS = {"admin", "auditor"}


def _actor(by: User | str, what: str, roles: set[str]) -> str:
    """Who acts, by name: a person holding one of `roles`, or the system (the worker, or an
    operator at the command line without --as)."""
    if isinstance(by, str):
        return by
    require_role(by, roles, what)
    return by.username


# -- Legal holds ---------------------------------------------------------------------------


class Holds:
    """The legal holds in force, read once, and what each keeps. A hold on a request or a
    customer keeps, besides its requests, the people who took part in them."""

    def __init__(self) -> None:
        self.active = list(LegalHold.objects.filter(released_at=None)
                           .select_related("owner", "customer", "person", "waiver"))  # fmt: skip
        self.people = {h.person_id for h in self.active if h.person_id}
        self._kept_people: dict[int, list[LegalHold]] | None = None

    def on_customer(self, customer_id: int) -> list[LegalHold]:
        return [h for h in self.active
                if customer_id in (h.customer_id, h.waiver and h.waiver.customer_id)]  # fmt: skip

    def on_contact(self, email: str) -> list[LegalHold]:
        customers = Customer.objects.filter(contact_email__iexact=email).values_list(
            "pk", flat=True
        )
        return [h for c in customers for h in self.on_customer(c)] if self.active else []

    def on_waiver(self, waiver: Waiver, people: set[int]) -> list[LegalHold]:
        """Holds keeping `waiver`; `people`: the ids of those who took part in it."""
        return [h for h in self.active if h.waiver_id == waiver.pk
                or h.customer_id == waiver.customer_id or h.person_id in people]  # fmt: skip

    def on_person(self, user: User) -> list[LegalHold]:
        if self._kept_people is None:
            self._kept_people = {}
            for h in self.active:
                if h.person_id:
                    self._kept_people.setdefault(h.person_id, []).append(h)
            for h, people in self._people_of_held_requests():
                for pk in people:
                    self._kept_people.setdefault(pk, []).append(h)
        return self._kept_people.get(user.pk, [])

    def _people_of_held_requests(self) -> Iterator[tuple[LegalHold, set[int]]]:
        for h in self.active:
            if h.person_id:
                continue
            requests = Waiver.objects.filter(pk=h.waiver_id) if h.waiver_id else (
                Waiver.objects.filter(customer=h.customer_id))  # fmt: skip
            people = set(requests.values_list("requester_id", flat=True))
            people |= set(requests.values_list("control_owner_id", flat=True))
            people |= set(Approval.objects.filter(waiver__in=requests)
                          .values_list("user_id", flat=True))  # fmt: skip
            yield h, people

    def unheld(self, requests):
        """`requests` but those a hold keeps (as a query, to take the first few)."""
        for h in self.active:
            if h.waiver_id:
                requests = requests.exclude(pk=h.waiver_id)
            elif h.customer_id:
                requests = requests.exclude(customer=h.customer_id)
        if self.people:
            requests = requests.exclude(
                Q(requester__in=self.people) | Q(control_owner__in=self.people)
                | Q(pk__in=Approval.objects.filter(user__in=self.people).values("waiver"))
            )  # fmt: skip
        return requests


def held_text(holds: list[LegalHold]) -> str:
    return "; ".join(f"legal hold #{h.pk} ({h.owner.username}: {h.reason})" for h in holds)


def hold(on: str, target: str, reason: str, owner: str, by: User | str,
         now: datetime | None = None) -> LegalHold:  # fmt: skip
    """Place a legal hold on a customer (by its id), a person (by user name or address) or a
    request (by reference), with a reason and an owner who answers for it."""
    now = now or clock.now()
    actor = _actor(by, "place legal holds", HOLDERS)
    problems, found = [], {}
    if on == "customer":
        found["customer"] = Customer.objects.filter(external_id=target.strip()).first()
    elif on == "person":
        found["person"] = _person(target)
    elif on == "waiver":
        found["waiver"] = Waiver.objects.filter(reference=target.strip().upper()).first()
    else:
        problems.append(Problem("on", "invalid", "choose a customer, a person or a waiver"))
    if found and None in found.values():
        problems.append(Problem("target", "not_found", f"no {on} '{target.strip()[:80]}'"))
    if not reason.strip():
        problems.append(Problem("reason", "required", "say why the records must be kept"))
    holder = User.objects.filter(username=owner.strip(), is_active=True).first()
    if holder is None:
        problems.append(Problem("owner", "not_found", f"no active user '{owner.strip()[:80]}'"))
    if problems:
        raise Invalid(problems)
    with audit.atomic():
        made = LegalHold.objects.create(**found, reason=reason.strip(), owner=holder, placed_at=now)
        audit.append(actor, "privacy.hold_placed", None,
                     {"hold": made.pk, "on": on, "target": target.strip(), "reason": made.reason,
                      "owner": holder.username},
                     object_type="legal_hold", object_ref=str(made.pk), at=now)  # fmt: skip
    return made


def release(hold_id: int, by: User | str, now: datetime | None = None) -> LegalHold:
    """End a legal hold: what it kept is erased at the next retention run if it is due."""
    now = now or clock.now()
    actor = _actor(by, "release legal holds", HOLDERS)
    with audit.atomic():
        found = LegalHold.objects.select_for_update().filter(pk=hold_id).first()
        if found is None:
            raise Invalid([Problem("hold", "not_found", f"no legal hold #{hold_id}")])
        if found.released_at is not None:
            said = f"legal hold #{hold_id} was released on {found.released_at:%Y-%m-%d}"
            raise Invalid([Problem("hold", "released", said)])
        found.released_at = now
        found.save(update_fields=["released_at"])
        audit.append(actor, "privacy.hold_released", None, {"hold": found.pk},
                     object_type="legal_hold", object_ref=str(found.pk), at=now)  # fmt: skip
    return found


# -- Erasing a person or a contact ---------------------------------------------------------


def erase(name: str, by: User | str, why: str, now: datetime | None = None) -> str:
    """Erase a person (by user name or address) or a contact (an address): their key
    destroyed, their personal data replaced by their pseudonym, which is returned. Refused
    under a legal hold, or when already erased."""
    now = now or clock.now()
    actor = _actor(by, "erase personal data", {"admin"})
    user = _person(name)
    email = name.strip().lower() if user is None and _known_contact(name) else ""
    problems = []
    if user is None and not email:
        said = f"no person or contact named '{name.strip()[:80]}'"
        problems.append(Problem("person", "not_found", said))
    if not why.strip():
        problems.append(Problem("why", "required", "say why (a request, or the retention)"))
    if problems:
        raise Invalid(problems)
    holds = Holds().on_person(user) if user else Holds().on_contact(email)
    if holds:
        raise Invalid([Problem("person", "held", f"kept by {held_text(holds)}")])
    if user is not None and (work := open_work_text(user)):
        raise Invalid([Problem("person", "open_work", work)])
    with audit.atomic():
        if user is not None and user.is_active:
            people.deactivate(user.username, actor, "erased")  # sessions and tokens end
        subject = _subject(user, email)
        if subject.erased_at is not None:
            raise Invalid([Problem("person", "erased",
                                   f"already erased on {subject.erased_at:%Y-%m-%d}")])  # fmt: skip
        texts = _forget(user, email, subject.pseudonym, erased_on(now))
        Subject.objects.filter(pk=subject.pk).update(key=None, email="", erased_at=now)
        audit.append(actor, "privacy.erased", None,
                     {"subject": subject.pseudonym, "why": why.strip()[:500],
                      "kind": "person" if user else "contact"},
                     object_type="subject", object_ref=subject.pseudonym, at=now)  # fmt: skip
        transaction.on_commit(lambda: _after_erasure(texts))
    return subject.pseudonym


def open_work_text(user: User) -> str:
    """What keeps a person from being erased: the work they must first hand over."""
    work = people.open_work(user)
    if not work:
        return ""
    listed = "; ".join(f"{w.ref}, {w.what}" for w in work[:5])
    more = f" and {len(work) - 5} more" if len(work) > 5 else ""
    return f"first hand over what they answer for: {listed}{more}"


def _subject(user: User | None, email: str) -> Subject:
    """The subject's row, locked (a second eraser waits and then finds it erased)."""
    names = [user.username] if user else [email]
    subjects.of(names)  # made if the trail never named them
    locked = Subject.objects.select_for_update()
    return locked.get(user=user) if user is not None else locked.get(user=None, email=email)


def _forget(user: User | None, email: str, pseudonym: str, marker: str) -> list[Replacement]:
    """Mark what the person wrote as erased and replace who they are, in every live table;
    the replacements, to apply to files after the commit."""
    written = []
    if user is not None:
        replacements = [_identifier(user.username, 0, pseudonym),
                        _identifier(user.email, re.IGNORECASE, pseudonym),
                        _identifier(user.get_full_name(), re.IGNORECASE, pseudonym)]  # fmt: skip
        for model, column, author in _WRITTEN:
            rows = model.objects.filter(**{author: user}).exclude(**{column: ""})
            written += rows.values_list(column, flat=True)
            rows.update(**{column: marker})
        User.objects.filter(pk=user.pk).update(
            username=pseudonym, email="", first_name="", last_name="", password="!", is_active=False
        )
        _reindex(Waiver.objects.filter(requester=user))  # found by their pseudonym now
        Profile.objects.filter(user=user).update(scim_external_id="", scim_attributes={},
                                                 idp_subject="")  # fmt: skip
    else:
        replacements = [_identifier(email, re.IGNORECASE, pseudonym)]
        Customer.objects.filter(contact_email__iexact=email).update(contact_email="")
    replacements += [Replacement(t, re.compile(re.escape(t)), marker)
                     for t in set(written) if len(t) >= _SHORTEST_TEXT]  # fmt: skip
    replacements = [r for r in replacements if r.text]
    scrub(replacements)
    return replacements


def _reindex(requests) -> None:
    """What a search finds `requests` by, written again as filing writes it."""
    for w in requests.select_related("requester", "customer").prefetch_related("products"):
        w.index_for_search(w.products.all())
        Waiver.objects.filter(pk=w.pk).update(search_text=w.search_text)


# What people write about a request: (model, column, its author); marked erased when the
# author is erased, or the request purged.
_WRITTEN = [
    (Approval, "comment", "user"),
    (Task, "note", "done_by"),
    (apps.get_model("governance", "Review"), "rationale", "decided_by"),
    (apps.get_model("insight", "Feedback"), "comment", "user"),
]


class Replacement(NamedTuple):
    text: str  # what is looked for
    pattern: re.Pattern  # where it stands
    by: str


def _identifier(text: str, flags: int, by: str) -> Replacement:
    """A name or an address where it stands alone: "mona" in "by mona." but not in
    "mona.rossi", "MONA-CO" or "mona@example.com"."""
    pattern = rf"(?<![\w.@+-]){re.escape(text)}(?![\w@-]|\.\w)"
    return Replacement(text, re.compile(pattern, flags), by)


def _replaced(value: Any, replacements: list[Replacement]) -> Any:
    if isinstance(value, str):
        for r in replacements:
            value = r.pattern.sub(r.by, value)
        return value
    if isinstance(value, list):
        return [_replaced(v, replacements) for v in value]
    if isinstance(value, dict):
        return {_replaced(k, replacements): _replaced(v, replacements) for k, v in value.items()}
    return value


def scrub(replacements: list[Replacement]) -> int:
    """Apply `replacements` to every text column of every live table but the trail (which
    holds only pseudonyms and sealed text) and the people's own (changed by name): one
    search per table. Returns the rows changed."""
    if not replacements:
        return 0
    changed = 0
    for model in apps.get_models():
        if model._meta.app_label == "audit" or model in (User, Profile) or model._meta.proxy:
            continue
        columns = [f for f in model._meta.concrete_fields
                   if not f.primary_key and isinstance(f, _TEXT)]  # fmt: skip
        if not columns:
            continue
        rows = model.objects.annotate(**{
            f"_{f.name}_text": Cast(f.name, models.TextField())
            for f in columns if isinstance(f, models.JSONField)})  # fmt: skip
        wanted = Q()
        for f in columns:
            name = f"_{f.name}_text" if isinstance(f, models.JSONField) else f.name
            for r in replacements:
                wanted |= Q(**{f"{name}__icontains": r.text})
        for row in rows.filter(wanted).only("pk", *(f.name for f in columns)).iterator():
            update = {}
            for f in columns:
                value = getattr(row, f.attname)
                if (new := _replaced(value, replacements)) != value:
                    update[f.attname] = new
            if update:
                model.objects.filter(pk=row.pk).update(**update)
                changed += 1
    return changed


_TEXT = models.CharField | models.TextField | models.JSONField


def _after_erasure(replacements) -> None:
    """Once committed: the mail written to the data directory, and SQLite's journal, no
    longer hold what was erased."""
    for path in Path(settings.DATA_DIR).joinpath("mail").glob("*"):
        if path.is_file():
            text = path.read_text(errors="surrogateescape")
            if (new := _replaced(text, replacements)) != text:
                path.write_text(new, errors="surrogateescape")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# -- Retention -----------------------------------------------------------------------------


@dataclass
class Due:
    """Something the retention will erase (a person, a contact) or purge (a request)."""

    kind: str  # person, contact or records
    target: str  # a user name, an address or a reference
    on: date
    held: list[LegalHold] = field(default_factory=list)
    about: Any = None
    blocked: str = ""  # what must happen first (a person's work handed over)


def due(today: date, within_days: int = 90, limit: int | None = None, kept: bool = True
        ) -> list[Due]:  # fmt: skip
    """What the active policy's retention erases or purges by `within_days` after `today`
    (earliest first), each with the legal holds that keep it (without those, unless
    `kept`); at most `limit` requests. Nothing without a `retention:` section."""
    try:
        retention = policies.compiled(policies.active_version()).document.retention
    except policies.NoActivePolicy:
        return []
    if retention is None:
        return []
    until = today + timedelta(days=within_days)
    keep_people = timedelta(days=retention.personal_data_days)
    holds = Holds()
    found = [Due("person", u.username, last + keep_people, holds.on_person(u), u,
                 open_work_text(u))
             for u, last in _people_last_involved() if last + keep_people <= until]  # fmt: skip
    found += [Due("contact", c.contact_email, last + keep_people, holds.on_customer(c.pk), c,
                  "the address is also a person's: erase them as a person"
                  if _person(c.contact_email) else "")
              for c, last in _contacts_last_ended() if last + keep_people <= until]  # fmt: skip
    ended = Waiver.objects.filter(
        status__in=TERMINAL,
        purge=None,
        updated_at__lt=_midnight(until - timedelta(days=retention.records_days) + timedelta(1)),
    ).order_by("updated_at", "pk")
    ended = list((ended if kept else holds.unheld(ended))[:limit])
    took_part: dict[int, set[int]] = {}
    if holds.people:  # who took part in each, to find those a hold on a person keeps
        for w in ended:
            took_part[w.pk] = {w.requester_id, w.control_owner_id}
        for waiver, user in Approval.objects.filter(
                waiver__in=ended, user__in=holds.people).values_list("waiver", "user"):  # fmt: skip
            took_part[waiver].add(user)
    found += [Due("records", w.reference,
                  w.updated_at.date() + timedelta(days=retention.records_days),
                  holds.on_waiver(w, took_part.get(w.pk, set())), w) for w in ended]  # fmt: skip
    found = [d for d in found if kept or not d.held]
    return sorted(found, key=lambda d: (d.on, d.kind, d.target))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=clock.now().tzinfo)


def _people_last_involved() -> Iterator[tuple[User, date]]:
    """People no longer active and not yet erased, with no request still open, and the day
    their last request ended (or they last signed in, or joined, if later)."""
    people = {u.pk: u for u in User.objects.filter(is_active=False)
              .exclude(subject__erased_at__isnull=False)}  # fmt: skip
    last: dict[int, datetime] = {}
    open_ = set()
    for role in ("requester", "control_owner", "approvals__user"):
        rows = (Waiver.objects.filter(**{f"{role}__in": list(people)}).values(role)
                .annotate(last=Max("updated_at")))  # fmt: skip
        for row in rows:
            last[row[role]] = max(row["last"], last.get(row[role], row["last"]))
        open_ |= set(Waiver.objects.filter(**{f"{role}__in": list(people)})
                     .exclude(status__in=TERMINAL).values_list(role, flat=True))  # fmt: skip
    for pk, user in people.items():
        if pk in open_:
            continue
        moments = [m for m in (last.get(pk), user.last_login, user.date_joined) if m]
        yield user, max(moments).date()


def _contacts_last_ended() -> Iterator[tuple[Customer, date]]:
    """Customers' contacts whose customer has requests, none still open: the day the last
    one ended."""
    customers = Customer.objects.exclude(contact_email="").annotate(
        last=Max("waivers__updated_at"),
        still_open=models.Count("waivers", filter=~Q(waivers__status__in=TERMINAL)),
    )
    for c in customers:
        if c.last is not None and not c.still_open:
            yield c, c.last.date()


def purge(waiver: Waiver, why: str, now: datetime) -> bool:
    """Remove an ended request's free text and files (its justification, evidence, comments
    and notes), keeping its figures, dates and references; once."""
    with audit.atomic():
        locked = Waiver.objects.select_for_update().get(pk=waiver.pk)
        if Purge.objects.filter(waiver=locked).exists():
            return False
        files = list(locked.attachments.values_list("sha256", flat=True))
        locked.attachments.all().delete()
        marker = erased_on(now)
        for model, column, _author in _WRITTEN:
            model.objects.filter(waiver=locked).exclude(**{column: ""}).update(**{column: marker})
        SentNotice.objects.filter(waiver=locked).update(body=marker, cc="")
        Waiver.objects.filter(pk=locked.pk).update(
            justification={k: marker for k in locked.justification},
            evidence={k: marker for k in locked.evidence},
            decision_rationale="", ended_reason="",
        )  # fmt: skip
        _reindex(Waiver.objects.filter(pk=locked.pk))
        Purge.objects.create(waiver=locked, at=now)
        audit.append("system", "waiver.purged", locked,
                     {"why": why, "files": len(files)}, at=now)  # fmt: skip
        transaction.on_commit(lambda: [attachments.forget(f) for f in set(files)])
    return True


BATCH = 100  # requests purged in one tick: a tick stays short, the rest follow


def apply_retention(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """The worker's job: erase and purge what the retention says is due today, unless held.
    Safe with several workers: each erasure and purge happens once."""
    done = []
    for item in due(now.date(), within_days=0, limit=BATCH, kept=False):
        if item.blocked:
            continue
        what = {"person": "personal data erased", "contact": "contact erased",
                "records": "records purged"}[item.kind]  # fmt: skip
        if dry_run:
            done.append((item.target, f"due: {what}"))
            continue
        try:
            if item.kind == "records":
                if purge(item.about, "retention", now):
                    done.append((item.target, what))
                continue
            pseudonym = erase(item.target, "system", "retention", now)
        except Invalid:  # another worker erased it first
            continue
        done.append((pseudonym, what))
    return done
