from django.db import migrations, models

# On PostgreSQL a reference number comes from one sequence: the year's number is the
# counter's `last` (the numbers handed out before) plus how far the sequence has moved
# past the year's `base`, set by the year's first request (or the first after this
# migration, or after a workspace was moved here). nextval() locks nothing and is never
# rolled back: a request that fails after taking its number leaves a gap, which is harmless
# (the audit trail, not the numbering, is the record of what was made).
CREATE = r"""
CREATE SEQUENCE IF NOT EXISTS waivers_reference;
CREATE OR REPLACE FUNCTION waiver_reference_number(p_year integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_last bigint;
    v_base bigint;
BEGIN
    SELECT last, base INTO v_last, v_base FROM waivers_referencecounter WHERE year = p_year;
    IF v_base IS NULL THEN
        -- The year's first request sets its base. Two at once: the second waits for the
        -- first's commit, then finds the base set and updates nothing (nor takes a number).
        INSERT INTO waivers_referencecounter (year, last) VALUES (p_year, 0)
        ON CONFLICT (year) DO NOTHING;
        UPDATE waivers_referencecounter SET base = nextval('waivers_reference')
        WHERE year = p_year AND base IS NULL;
        SELECT last, base INTO v_last, v_base FROM waivers_referencecounter WHERE year = p_year;
    END IF;
    RETURN v_last + nextval('waivers_reference') - v_base;
END $$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE waivers_referencecounter SET last = last + "
            "(SELECT last_value FROM waivers_reference) - base WHERE base IS NOT NULL"
        )
        schema_editor.execute("DROP FUNCTION IF EXISTS waiver_reference_number(integer)")
        schema_editor.execute("DROP SEQUENCE IF EXISTS waivers_reference")


class Migration(migrations.Migration):
    dependencies = [("waivers", "0013_approvals_delegated_staged_escalated")]
    operations = [
        migrations.AddField(
            model_name="referencecounter",
            name="base",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(create, drop),
    ]
