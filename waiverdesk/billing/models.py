from django.db import models


class InvoiceLine(models.Model):
    """One line of an invoice, as the billing system reported it.

    Imported in bulk (billing.services.import_lines), like usage records: one index per
    way it is read (`invoice_by_account`, and the invoice and line that identify it), and
    the database does not check each line's customer and product again: the import stores
    only lines whose customer and product it found, in the same statement, and PROTECT
    keeps a customer or product with invoice lines from being deleted."""

    invoice = models.CharField(max_length=60)
    line = models.PositiveIntegerField()
    customer = models.ForeignKey("directory.Customer", on_delete=models.PROTECT, related_name="+",
                                 db_constraint=False, db_index=False)  # fmt: skip
    product = models.ForeignKey("directory.Product", on_delete=models.PROTECT, related_name="+",
                                db_constraint=False, db_index=False)  # fmt: skip
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
