from django.db import models


class EntitlementChange(models.Model):
    """One item an exception grants on one product, or its revert: what a licensing system
    applies. A grant is recorded when the exception takes effect, its revert when it ends."""

    class Change(models.TextChoices):
        GRANT = "grant"
        REVERT = "revert"

    waiver = models.ForeignKey(
        "waivers.Waiver", on_delete=models.PROTECT, related_name="entitlement_changes"
    )
    customer = models.ForeignKey("directory.Customer", on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey("directory.Product", on_delete=models.PROTECT, related_name="+")
    change = models.CharField(max_length=6, choices=Change.choices)
    item = models.CharField(max_length=20)
    value = models.JSONField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["waiver", "product", "item", "change"], name="entitlement_change_once"
            )
        ]
        indexes = [models.Index(fields=["customer", "product"], name="entitlement_by_account")]

    def __str__(self) -> str:
        return f"{self.change} {self.item}={self.value} ({self.waiver_id})"
