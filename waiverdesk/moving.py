"""Moving a workspace to another database (from SQLite to PostgreSQL, as a team outgrows
one machine): every table copied as it is, in one transaction on the target, the copy
counted table by table, and the audit trail verified there, with its signed checkpoints,
before the move is called done.

Rows are copied with their values as stored (times to the microsecond, ids as they were),
which Django's `dumpdata` and `loaddata` do not promise: they write times to the
millisecond (trails written before that precision was kept would not verify) and content
types by id. The attachments' files stay where they are, in WAIVERDESK_DATA_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import dj_database_url
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.color import no_style
from django.db import connections, transaction
from django.db.models import Model

from waiverdesk.core.errors import Invalid, Problem

TARGET = "move_target"
BATCH = 2000
# Made by `migrate` on the target itself (each database numbers its own).
OWN = (ContentType, Permission)


class MoveFailed(Exception):
    pass


def models() -> list[type[Model]]:
    """Every table a workspace's data lives in, the many-to-many ones too."""
    return [m for m in apps.get_models(include_auto_created=True)
            if m._meta.managed and not m._meta.proxy and m not in OWN]  # fmt: skip


def move_to(url: str, say: Callable[[str], None]) -> dict[str, int]:
    """Copy this workspace into the empty database at `url` (migrated first, as
    `waiverdesk migrate` would), verify its audit trail there, and return the rows copied
    per table. Raises Invalid for a target that is not empty, MoveFailed for one whose copy
    does not verify."""
    env = {**os.environ, "DATABASE_URL": url}
    # The target as a second database of this process, its settings filled as Django fills
    # a configured one's.
    connections.settings[TARGET] = connections.configure_settings(
        {"default": dj_database_url.parse(url)}
    )["default"]
    try:
        _require_empty()  # before migrating it: a database in use is not touched
        migrated = subprocess.run([sys.executable, "-m", "waiverdesk", "migrate", "-v", "0"],
                                  env=env, capture_output=True, text=True)  # fmt: skip
        if migrated.returncode:
            raise MoveFailed(f"the target could not be migrated: {migrated.stderr[-2000:]}")
        copied = _copy(say)
    finally:
        connections[TARGET].close()
        del connections[TARGET]
        del connections.settings[TARGET]
    say("verifying the audit trail on the target…")
    verified = subprocess.run([sys.executable, "-m", "waiverdesk", "audit", "verify"], env=env,
                              capture_output=True, text=True)  # fmt: skip
    if verified.returncode:
        raise MoveFailed(f"the copy does not verify: {verified.stderr.strip()}")
    say(verified.stdout.strip())
    return copied


def _require_empty() -> None:
    """Refuse a target that holds rows in any of the workspace's tables it has."""
    there = set(connections[TARGET].introspection.table_names())
    taken = [m._meta.db_table for m in models()
             if m._meta.db_table in there and m._base_manager.using(TARGET).exists()]  # fmt: skip
    if taken:
        message = (f"the target holds data already (in {', '.join(taken[:5])}): move-to copies "
                   "into an empty database")  # fmt: skip
        raise Invalid([Problem("database", "not_empty", message)])


def _copy(say: Callable[[str], None]) -> dict[str, int]:
    tables = models()
    _require_empty()  # still, now that it is migrated
    permissions = _permission_ids()
    total = sum(m._base_manager.using("default").count() for m in tables)
    copied: dict[str, int] = {}
    done = 0
    # One snapshot of the source and one transaction on the target: all of it or nothing.
    with transaction.atomic(using="default"), transaction.atomic(using=TARGET):
        for model in tables:
            fields = list(model._meta.concrete_fields)
            rows = model._base_manager.using("default").order_by("pk").iterator(BATCH)
            batch, n = [], 0
            for row in rows:
                for f in fields:
                    if f.is_relation and f.related_model is Permission:
                        setattr(row, f.attname, permissions[getattr(row, f.attname)])
                batch.append(row)
                if len(batch) == BATCH:
                    n += _insert(model, fields, batch)
                    batch = []
                    say(f"{done + n:,} of {total:,} rows copied ({model._meta.db_table})")
            n += _insert(model, fields, batch)
            copied[model._meta.db_table] = n
            done += n
        _reset_sequences(tables)
        _carry_reference_numbers()
        say(f"{done:,} of {total:,} rows copied")
        for model in tables:
            if model._base_manager.using(TARGET).count() != copied[model._meta.db_table]:
                raise MoveFailed(f"{model._meta.db_table}: the target's count differs")
    return copied


def _insert(model: type[Model], fields, batch: list[Model]) -> int:
    """Insert `batch` as it is (raw: no field is given a value of its own, such as
    auto_now's), in statements within the engines' limit on parameters."""
    if not batch:
        return 0
    size = max(1, 30_000 // len(fields))
    for start in range(0, len(batch), size):
        model._base_manager.using(TARGET)._insert(batch[start : start + size], fields=fields,
                                                  using=TARGET, raw=True)  # fmt: skip
    return len(batch)


def _permission_ids() -> dict[int, int]:
    """The target's id of each of the source's permissions (by app, model and codename)."""

    def key(p):
        return p.content_type.app_label, p.content_type.model, p.codename

    there = {key(p): p.pk for p in Permission.objects.using(TARGET).select_related("content_type")}
    return {p.pk: there[key(p)] for p in Permission.objects.select_related("content_type")
            if key(p) in there}  # fmt: skip


def _carry_reference_numbers() -> None:
    """Each year's reference counter on the target set past the highest reference made in
    that year (on PostgreSQL the source's counters are relative to its own sequence)."""
    from waiverdesk.waivers.models import ReferenceCounter, Waiver

    for year in ReferenceCounter.objects.values_list("year", flat=True):
        highest = (Waiver.objects.filter(reference__startswith=f"WVR-{year}-")
                   .order_by("-reference").values_list("reference", flat=True).first())  # fmt: skip
        ReferenceCounter.objects.using(TARGET).filter(year=year).update(
            last=int(highest.rsplit("-", 1)[1]) if highest else 0, base=None
        )


def _reset_sequences(tables: list[type[Model]]) -> None:
    """The target's id sequences set past the ids copied, so new rows get new ids."""
    target = connections[TARGET]
    with target.cursor() as cursor:
        for statement in target.ops.sequence_reset_sql(no_style(), tables):
            cursor.execute(statement)
