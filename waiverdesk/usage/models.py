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
            models.Index(fields=["customer", "period_start"], name="usage_by_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.record_id}: {self.quantity} {self.metric}"
