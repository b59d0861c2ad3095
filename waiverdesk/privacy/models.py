from django.conf import settings
from django.db import models
from django.db.models import Q


class LegalHold(models.Model):
    """Keeps a customer's, a person's or a request's records from being erased, on a schedule
    or on request, until it is released: for litigation, an investigation or an audit."""

    customer = models.ForeignKey(
        "directory.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="legal_holds",
    )  # fmt: skip
    waiver = models.ForeignKey(
        "waivers.Waiver", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    placed_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="hold_on_one_thing",
                condition=Q(customer__isnull=False, person=None, waiver=None)
                | Q(customer=None, person__isnull=False, waiver=None)
                | Q(customer=None, person=None, waiver__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"hold #{self.pk} on {self.on}"

    @property
    def on(self) -> str:
        if self.customer_id:
            return f"customer {self.customer.external_id}"
        if self.person_id:
            return f"person {self.person.username}"
        return f"waiver {self.waiver.reference}"


class Purge(models.Model):
    """When an ended request's records were purged under the policy's retention: its free
    text and files removed, its figures and references kept."""

    waiver = models.OneToOneField("waivers.Waiver", on_delete=models.CASCADE, related_name="purge")
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.waiver_id} purged"
