from django.db import models


class UsageRecord(models.Model):
    """What a customer used of a product over a period (a day, for a timestamped record),
    as a product's metering reported it; `record_id` is the sender's, for de-duplication.

    Millions arrive in bulk, so the table carries only the indexes its readers use (its
    key, the record id, and `usage_by_customer`: every reader filters by customer first),
    and the database does not check each row's customer and product again: ingestion
    stores only rows whose customer and product it found, in the same statement, and
    PROTECT keeps a customer or product with usage from being deleted."""

    record_id = models.CharField(max_length=100, primary_key=True)
    customer = models.ForeignKey(
        "directory.Customer",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    product = models.ForeignKey(
        "directory.Product",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    metric = models.CharField(max_length=60)
    quantity = models.FloatField()
    period_start = models.DateField()
    period_end = models.DateField()
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["customer", "metric", "period_start"], name="usage_by_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.record_id}: {self.quantity} {self.metric}"


class Flag(models.Model):
    """A finding about an exception's use: leakage (beyond its scope, after its end, on a
    product it does not cover) or under-use (less than the outcome it promised)."""

    class Kind(models.TextChoices):
        OVER_SCOPE = "over_scope"
        AFTER_END = "after_end"
        UNCOVERED_PRODUCT = "uncovered_product"
        UNDER_USE = "under_use"

    waiver = models.ForeignKey("waivers.Waiver", on_delete=models.CASCADE, related_name="flags")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    detail = models.CharField(max_length=300)
    found_at = models.DateTimeField()

    class Meta:
        ordering = ["-found_at", "id"]
        constraints = [models.UniqueConstraint(fields=["waiver", "kind"], name="flag_once")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"
