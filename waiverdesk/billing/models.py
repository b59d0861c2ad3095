from django.db import models


class InvoiceLine(models.Model):
    """One line of an invoice, as the billing system reported it."""

    invoice = models.CharField(max_length=60)
    line = models.PositiveIntegerField()
    customer = models.ForeignKey("directory.Customer", on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey("directory.Product", on_delete=models.PROTECT, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    quantity = models.FloatField()
    unit_price = models.FloatField()
    discount_pct = models.FloatField(default=0)
    imported_at = models.DateTimeField()

    class Meta:
        ordering = ["period_start", "invoice", "line"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "line"], name="invoice_line_once")
        ]
        indexes = [models.Index(fields=["customer", "product"], name="invoice_by_account")]

    def __str__(self) -> str:
        return f"{self.invoice}/{self.line}"
