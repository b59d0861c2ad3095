"""The metrics read a period's requests from one index: the concession in the base currency
becomes a column (it was read from the `money` JSON of every row), and the index on
submission time carries what the dashboard counts (PostgreSQL: INCLUDE)."""

from django.db import migrations, models
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce


def fill(apps, schema_editor):
    Waiver = apps.get_model("waivers", "Waiver")
    Waiver.objects.using(schema_editor.connection.alias).update(
        concession_base=Coalesce(
            Cast(KT("money__concession_base"), models.FloatField()),
            Cast(KT("financials__concession"), models.FloatField()),  # priced before rates
        )
    )


class Migration(migrations.Migration):
    dependencies = [("waivers", "0014_reference_sequence")]

    operations = [
        migrations.RemoveIndex(model_name="waiver", name="waiver_submitted_idx"),
        migrations.AddField(
            model_name="waiver",
            name="concession_base",
            field=models.FloatField(
                blank=True,
                editable=False,
                null=True,
                help_text="The concession in the policy's base currency at the rate of its "
                "pricing (as money holds it; the filed figure before rates): what the metrics "
                "sum.",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="waiver",
            index=models.Index(
                fields=["submitted_at"],
                include=("id", "type", "region", "status", "decision", "decided_at",
                         "activated_at", "end", "updated_at", "policy_version", "kind",
                         "concession_base"),
                name="waiver_metrics_idx",
            ),  # fmt: skip
        ),
    ]
