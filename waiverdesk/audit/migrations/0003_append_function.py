from django.db import migrations

# On PostgreSQL an append is one round trip: this function takes the chain lock,
# reads the head, builds the canonical text and hash exactly as
# waiverdesk.core.audit_chain.canonical() does, and inserts the entry. Each
# statement of a VOLATILE function takes a fresh snapshot under READ
# COMMITTED, so the head is read after the lock is granted.
CREATE = r"""
CREATE OR REPLACE FUNCTION audit_append(
    p_lock bigint, p_at timestamptz, p_at_text text, p_actor text, p_action text,
    p_object_type text, p_object_ref text, p_payload text
) RETURNS TABLE (seq bigint, hash varchar) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq bigint;
    v_prev varchar;
    v_text text;
    v_hash varchar;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_entry e ORDER BY e.seq DESC LIMIT 1;
    v_seq := coalesce(v_seq, 0) + 1;
    v_prev := coalesce(v_prev, repeat('0', 64));
    v_text := '[' || v_seq || ',' || to_json(p_at_text)::text || ',' || to_json(p_actor)::text
        || ',' || to_json(p_action)::text || ',' || to_json(p_object_type)::text || ','
        || to_json(p_object_ref)::text || ',' || to_json(v_prev)::text || ',' || p_payload || ']';
    v_hash := encode(sha256(convert_to(v_text, 'UTF8')), 'hex');
    INSERT INTO audit_entry (seq, at, actor, action, object_type, object_ref, payload,
                             prev_hash, hash, canonical)
    VALUES (v_seq, p_at, p_actor, p_action, p_object_type, p_object_ref, p_payload,
            v_prev, v_hash, v_text);
    RETURN QUERY SELECT v_seq, v_hash;
END $$
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS audit_append(bigint, timestamptz, text, text, text, text, "
            "text, text)"
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]
    operations = [migrations.RunPython(create, drop)]
