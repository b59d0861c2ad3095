"""The audit trail: append-only in the database, and any change to it is found."""

import pytest
from django.db import DatabaseError, connection, transaction

from waiverdesk.audit import services as audit
from waiverdesk.audit import triggers
from waiverdesk.audit.models import AuditCheckpoint, AuditEntry
from waiverdesk.testing import NOW, postgres_only, request_body
from waiverdesk.waivers import services


@pytest.fixture
def trail(world):
    """A short history: a request created, submitted and approved."""
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", "ok", now=NOW)
    return ref


def as_attacker(sql: str, params=()) -> None:
    """Drop the append-only triggers, as someone with database access would, and write."""
    with connection.cursor() as cursor:
        triggers.uninstall(connection.vendor, cursor.execute)
        cursor.execute(sql, params)


def test_an_untouched_chain_verifies_with_its_length_and_head(trail):
    audit.checkpoint()
    result = audit.verify()
    assert result.ok and result.length == AuditEntry.objects.count()
    assert result.head == AuditEntry.objects.last().hash == AuditCheckpoint.objects.get().hash


@pytest.mark.parametrize(
    "sql", ["UPDATE audit_entry SET actor = 'mallory'", "DELETE FROM audit_entry"]
)
def test_the_database_refuses_to_change_or_delete_entries(trail, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert audit.verify().ok


@postgres_only
@pytest.mark.parametrize("table", ["audit_entry", "audit_checkpoint"])
def test_postgresql_refuses_to_truncate_the_audit_tables(trail, table):
    audit.checkpoint()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL waiverdesk.emptying_audit = 'off'")  # as in production
        cursor.execute(f"TRUNCATE {table} CASCADE")
    assert audit.verify().ok and AuditCheckpoint.objects.exists()


@pytest.mark.parametrize("then_begun_again", [False, True])
def test_a_trail_emptied_while_requests_remain_does_not_verify(trail, then_begun_again):
    as_attacker("DELETE FROM audit_checkpoint")
    as_attacker("DELETE FROM audit_entry")
    if then_begun_again:  # a fresh, well-linked chain of new entries
        audit.append("mallory", "nothing.happened", object_type="x", object_ref="y")
    result = audit.verify()
    assert not result.ok and result.first_bad_seq == 1
    assert f"no entry about {trail}, the oldest request" in result.reason


def test_an_empty_trail_of_an_empty_database_verifies(db):
    assert audit.verify().ok


def test_checkpoints_are_append_only_too(trail):
    audit.checkpoint()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditCheckpoint.objects.update(seq=1)


def test_a_checkpoint_is_taken_only_when_the_chain_has_grown(trail):
    assert audit.checkpoint().seq == AuditEntry.objects.count()
    assert audit.checkpoint() is None


@pytest.mark.parametrize(
    "column",
    ["actor", "action", "object_type", "object_ref", "payload", "canonical", "hash", "prev_hash"],
)
def test_one_changed_byte_in_any_column_is_found_and_named(trail, column):
    victim = AuditEntry.objects.filter(object_ref=trail).order_by("seq")[1]
    value = getattr(victim, column)
    flipped = value[:-1] + ("0" if value[-1] != "0" else "1")
    as_attacker(f"UPDATE audit_entry SET {column} = %s WHERE seq = %s", [flipped, victim.seq])
    result = audit.verify()
    assert not result.ok
    # A changed hash is detected at the entry whose successor no longer links to it.
    assert result.first_bad_seq in (
        (victim.seq, victim.seq + 1) if column == "hash" else (victim.seq,)
    )


def test_a_changed_time_is_found(trail):
    victim = AuditEntry.objects.order_by("seq")[2]
    as_attacker(
        "UPDATE audit_entry SET at = %s WHERE seq = %s",
        [victim.at.replace(microsecond=victim.at.microsecond ^ 1), victim.seq],
    )
    assert audit.verify().first_bad_seq == victim.seq


def test_a_deleted_entry_in_the_middle_is_found(trail):
    as_attacker("DELETE FROM audit_entry WHERE seq = 3")
    result = audit.verify()
    assert (result.ok, result.first_bad_seq, result.length) == (False, 3, 2)
    assert "entries missing" in result.reason


def test_entries_cut_off_behind_a_checkpoint_are_found(trail):
    audit.checkpoint()
    last = AuditEntry.objects.last().seq
    as_attacker("DELETE FROM audit_entry WHERE seq = %s", [last])
    result = audit.verify()
    assert not result.ok and result.first_bad_seq == last
    assert "entries removed" in result.reason


def test_a_chain_rewritten_from_scratch_disagrees_with_its_checkpoint(trail):
    audit.checkpoint()
    victim = AuditEntry.objects.get(seq=2)
    as_attacker("DELETE FROM audit_entry WHERE seq >= 2")
    # The attacker re-appends a doctored history: a perfectly linked chain.
    with transaction.atomic():
        for _ in range(AuditCheckpoint.objects.get().seq - 1):
            audit.append(
                "mallory", "nothing.happened", object_type="x", object_ref=victim.object_ref
            )
    result = audit.verify()
    assert not result.ok and "checkpoint" in result.reason


@pytest.mark.parametrize("column", ["root", "signature"])
def test_a_signed_checkpoint_whose_root_or_signature_was_changed_does_not_verify(trail, column):
    audit.checkpoint()
    with transaction.atomic():
        audit.append("rita", "x.y", object_type="x", object_ref="1")
    taken = audit.checkpoint()
    changed = "0" * len(getattr(taken, column))
    as_attacker(f"UPDATE audit_checkpoint SET {column} = %s WHERE seq = %s", [changed, taken.seq])
    result = audit.verify()
    assert not result.ok and result.first_bad_seq == taken.seq
    assert f"the signed checkpoint at {taken.seq}" in result.reason
    assert ("Merkle root" if column == "root" else "signature") in result.reason


def test_times_are_kept_to_the_millisecond_that_serializers_write(db):
    from datetime import timedelta

    with transaction.atomic():
        audit.append("rita", "x.y", object_type="x", object_ref="1",
                     at=NOW + timedelta(microseconds=123_456))  # fmt: skip
    entry = AuditEntry.objects.get()
    assert entry.at == NOW + timedelta(microseconds=123_000)
    assert audit.verify().ok


def test_entries_with_any_text_verify_on_every_engine(db):
    # On PostgreSQL the database builds the canonical text; it must match Python's byte for byte.
    awkward = 'a "quoted" \\ back\nslash\ttab \x01 é 東京 \u2028 😀 \x7f'
    with transaction.atomic():
        audit.append(
            awkward,
            "odd.text",
            None,
            {"note": awkward, "n": [1, 2.5, None, True]},
            object_type="test",
            object_ref=awkward,
        )
    entry = AuditEntry.objects.get(action="odd.text")
    assert entry.actor == awkward and entry.object_ref == awkward
    assert audit.verify().ok


def test_a_changes_entries_are_appended_at_its_end_and_not_those_of_a_part_undone(db):
    with audit.atomic():
        audit.append("rita", "x.kept", object_type="x", object_ref="1")
        assert not AuditEntry.objects.exists()  # not yet: at the block's end
        try:
            with transaction.atomic():
                audit.append("rita", "x.undone", object_type="x", object_ref="2")
                raise DatabaseError("this part fails")
        except DatabaseError:
            pass
        audit.append("rita", "x.after", object_type="x", object_ref="3")
    actions = list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))
    assert actions == ["x.kept", "x.after"] and audit.verify().ok
