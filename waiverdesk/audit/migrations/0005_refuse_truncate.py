from django.db import migrations

from waiverdesk.audit import triggers


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in triggers.TRUNCATE_GUARD:
            schema_editor.execute(statement)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in triggers.TRUNCATE_UNGUARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_signed_checkpoints")]
    operations = [migrations.RunPython(install, uninstall)]
