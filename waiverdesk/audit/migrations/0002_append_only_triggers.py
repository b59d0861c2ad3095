from django.db import migrations

from waiverdesk.audit import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor.connection.vendor, schema_editor.execute)


def uninstall(apps, schema_editor):
    triggers.uninstall(schema_editor.connection.vendor, schema_editor.execute)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, uninstall)]
