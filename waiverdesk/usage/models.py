from django.db import models


class UsageRecord(models.Model):
    """What a customer used of a product over a period (a day, for a timestamped record),
    as a product's metering reported it; `record_id` is the sender's, for de-duplication."""

    record_id = models.CharField(max_length=100, unique=True)
    customer = models.ForeignKey("directory.Customer", on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey("directory.Product", on_delete=models.PROTECT, related_name="+")
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
