"""Personal data in the trail: people named by pseudonym, their free text sealed under a key
of their own, so that erasing a person (destroying the key) leaves every hash and signature
intact.

Before an entry is chained, its actor, its object (when the object is a person) and every
value in its payload that is a person's user name or email address become that person's
pseudonym (`person-7f3a09c1`); an email address that is no one's becomes a contact's
(`contact-…`). The values of SEALED keys (comments, rationales, reasons, notes, network
addresses, former names) are encrypted with AES-256-GCM under the key of the person the
entry is about (the object if a person, else the actor) as
`{"sealed": PSEUDONYM, "data": base64(nonce‖text)}`. Reading the trail (`shown`) turns
pseudonyms back into user names and opens what can be opened; what was sealed under an
erased key reads "erased on DATE".
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection

from .models import Subject

SEALED = frozenset({"comment", "rationale", "reason", "note", "address", "former_name"})
PSEUDONYM = re.compile(r"(person|contact)-[0-9a-f]{8}")
EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+")
NAME = re.compile(r"[\w.@+'-]{1,254}")  # what a user name or an address may be


def _new(user_id: int | None = None, email: str = "") -> Subject:
    kind = "person" if user_id is not None else "contact"
    return Subject(pseudonym=f"{kind}-{secrets.token_hex(4)}", user_id=user_id,
                   email=email.lower(), key=AESGCM.generate_key(bit_length=256))  # fmt: skip


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def of(names: Iterable[str], create: bool = True) -> dict[str, Subject]:
    """The subjects that `names` (user names and email addresses, as written) stand for:
    {name: subject}; unless `create` is false, made on first mention. One query when all
    are known."""
    names = {n for n in names if NAME.fullmatch(n)}
    emails = {n.lower() for n in names if EMAIL.fullmatch(n)}
    if not names:
        return {}
    users = _people(names, emails | {n for n in names if "@" in n})
    if create and (missing := [pk for pk, (_u, _e, subject) in users.items() if subject is None]):
        Subject.objects.bulk_create(
            [_new(pk) for pk in missing], ignore_conflicts=True
        )  # the conflict: another transaction made it first
        for subject in Subject.objects.filter(user__in=missing):
            users[subject.user_id] = (*users[subject.user_id][:2], subject)
    found: dict[str, Subject] = {}
    for username, email, subject in users.values():
        if subject is None:
            continue
        if username in names:
            found[username] = subject
        if email.lower() in emails:
            found.setdefault(email.lower(), subject)
    if contacts := emails - set(found):
        known = Subject.objects.filter(user=None, email__in=contacts)
        if create and len(known) < len(contacts):
            fresh = [_new(email=e) for e in contacts - {s.email for s in known}]
            Subject.objects.bulk_create(fresh, ignore_conflicts=True)
        found.update((s.email, s) for s in known.all())
    return {
        n: s
        for n in names
        if (s := found.get(n) or (found.get(n.lower()) if n.lower() in emails else None))
    }


def _people(names: set[str], emails: set[str]) -> dict[int, tuple[str, str, Subject | None]]:
    """{user id: (user name, address, subject or None)} of the people with one of `names` or
    `emails`, in one statement (written out: it runs for every change)."""
    where = f"u.username IN ({', '.join(['%s'] * len(names))})"
    if emails:
        where += f" OR u.email IN ({', '.join(['%s'] * len(emails))})"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u.id, u.username, u.email, s.id, s.pseudonym, s.key "
            f"FROM auth_user u LEFT JOIN audit_subject s ON s.user_id = u.id WHERE {where}",
            [*names, *emails],
        )
        rows = cursor.fetchall()
    return {
        pk: (username, email,
             None if sid is None else Subject(id=sid, pseudonym=pseudonym, user_id=pk, key=key))
        for pk, username, email, sid, pseudonym, key in rows
    }  # fmt: skip


def seal(subject: Subject, value: Any) -> dict[str, str]:
    """`value` (any JSON) encrypted under the subject's key."""
    nonce = os.urandom(12)
    text = json.dumps(value, ensure_ascii=False, default=str).encode()
    sealed = AESGCM(bytes(subject.key)).encrypt(nonce, text, subject.pseudonym.encode())
    return {"sealed": subject.pseudonym, "data": base64.b64encode(nonce + sealed).decode()}


def protect(entries: list[tuple]) -> list[tuple]:
    """Entries (actor, action, object type, object ref, payload, at) as the chain should
    hold them: people by pseudonym, their free text sealed (see the module's text)."""
    names: set[str] = set()
    for actor, _action, kind, ref, payload, _at in entries:
        names.add(actor)
        if kind == "user":
            names.add(ref)
        names.update(_strings(payload))
    subjects = of(names)
    if not subjects:
        return entries
    done = []
    for actor, action, kind, ref, payload, at in entries:
        about = subjects.get(ref) if kind == "user" else None
        owner = about or subjects.get(actor)
        if about is not None:
            ref = about.pseudonym
        if (who := subjects.get(actor)) is not None:
            actor = who.pseudonym
        done.append((actor, action, kind, ref, _protected(payload, subjects, owner), at))
    return done


def _protected(value: Any, subjects: dict[str, Subject], owner: Subject | None) -> Any:
    if isinstance(value, str):
        return subjects[value].pseudonym if value in subjects else value
    if isinstance(value, list | tuple):
        return [_protected(v, subjects, owner) for v in value]
    if isinstance(value, dict):
        return {
            k: seal(owner, v)
            if k in SEALED and owner is not None and owner.key and v not in ("", None)
            else _protected(v, subjects, owner)
            for k, v in value.items()
        }
    return value


class Reader:
    """Reads entries as people should see them: pseudonyms as user names (or the contact's
    address), sealed values opened, or "erased on DATE" once their key is destroyed."""

    def __init__(self, texts: Iterable[str]) -> None:
        wanted = {m.group(0) for text in texts for m in PSEUDONYM.finditer(text)}
        # {pseudonym: (their user name or address, key, when erased)}, in one statement.
        self.subjects: dict[str, tuple[str, Any, Any]] = {}
        if wanted:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT s.pseudonym, COALESCE(u.username, s.email), s.key, s.erased_at "
                    "FROM audit_subject s LEFT JOIN auth_user u ON u.id = s.user_id "
                    f"WHERE s.pseudonym IN ({', '.join(['%s'] * len(wanted))})", list(wanted),
                )  # fmt: skip
                self.subjects = {p: rest for p, *rest in cursor.fetchall()}

    def name(self, text: str) -> str:
        known, _key, erased = self.subjects.get(text, ("", None, None))
        return text if erased is not None else known or text

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.name(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            if set(value) == {"sealed", "data"}:
                return self.opened(value)
            return {k: self.value(v) for k, v in value.items()}
        return value

    def opened(self, sealed: dict[str, str]) -> Any:
        if sealed["sealed"] not in self.subjects:
            return "sealed under an unknown key"
        _name, key, erased = self.subjects[sealed["sealed"]]
        if key is None:
            return f"erased on {str(erased)[:10]}"  # a datetime, or SQLite's text of one
        try:
            raw = base64.b64decode(sealed["data"])
            text = AESGCM(bytes(key)).decrypt(raw[:12], raw[12:], sealed["sealed"].encode())
        except (ValueError, InvalidTag):
            return "sealed and unreadable"
        return json.loads(text)


def shown(entries) -> list[tuple[str, str, dict[str, Any]]]:
    """(actor, object ref, payload) of each entry as people should read them."""
    entries = list(entries)
    reader = Reader(f"{e.actor} {e.object_ref} {e.payload}" for e in entries)
    return [(reader.name(e.actor), reader.name(e.object_ref), reader.value(json.loads(e.payload)))
            for e in entries]  # fmt: skip


def names_for(name: str) -> list[str]:
    """What the trail calls `name` (a user name or address): itself and, if it is a
    person's or a contact's, their pseudonym; to find their entries."""
    found = of([name], create=False) if name else {}
    return [name, *(s.pseudonym for s in found.values())]
