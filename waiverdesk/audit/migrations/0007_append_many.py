from importlib import import_module

from django.db import migrations

# audit_append_many(lock, ats, at_texts, actors, actions, types, refs, payloads) appends
# a transaction's entries in one round trip: it takes the chain's advisory lock, reads the
# head once, and builds each canonical text and hash exactly as
# waiverdesk.core.audit_chain.canonical() does. Each statement of a VOLATILE function takes
# a fresh snapshot under READ COMMITTED, so the head is read after the lock is granted.
CREATE = r"""
CREATE OR REPLACE FUNCTION audit_append_many(
    p_lock bigint, p_at timestamptz[], p_at_text text[], p_actor text[], p_action text[],
    p_object_type text[], p_object_ref text[], p_payload text[]
) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq bigint;
    v_prev varchar;
    v_text text;
    v_hash varchar;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT e.seq, e.hash INTO v_seq, v_prev FROM audit_entry e ORDER BY e.seq DESC LIMIT 1;
    v_seq := coalesce(v_seq, 0);
    v_prev := coalesce(v_prev, repeat('0', 64));
    FOR i IN 1 .. coalesce(array_length(p_at, 1), 0) LOOP
        v_seq := v_seq + 1;
        v_text := '[' || v_seq || ',' || to_json(p_at_text[i])::text || ','
            || to_json(p_actor[i])::text || ',' || to_json(p_action[i])::text || ','
            || to_json(p_object_type[i])::text || ',' || to_json(p_object_ref[i])::text || ','
            || to_json(v_prev)::text || ',' || p_payload[i] || ']';
        v_hash := encode(sha256(convert_to(v_text, 'UTF8')), 'hex');
        INSERT INTO audit_entry (seq, at, actor, action, object_type, object_ref, payload,
                                 prev_hash, hash, canonical)
        VALUES (v_seq, p_at[i], p_actor[i], p_action[i], p_object_type[i], p_object_ref[i],
                p_payload[i], v_prev, v_hash, v_text);
        v_prev := v_hash;
    END LOOP;
END $$;
DROP FUNCTION audit_append(bigint, timestamptz, text, text, text, text, text, text);
"""
# The one-entry function of 0003, which this one replaces.
ONE = import_module("waiverdesk.audit.migrations.0003_append_function").CREATE


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS audit_append_many(bigint, timestamptz[], text[], text[], "
            "text[], text[], text[], text[])"
        )
        schema_editor.execute(ONE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_refusal_tally")]
    operations = [migrations.RunPython(create, drop)]
