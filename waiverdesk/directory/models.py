from django.conf import settings
from django.db import models


class Customer(models.Model):
    """A customer account; its account owner is conflicted on its exceptions."""

    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    region = models.CharField(max_length=16, blank=True)
    contact_email = models.EmailField(
        blank=True, help_text="Where the customer notice of an exception is sent."
    )
    account_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_accounts",
    )

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}"

    @property
    def audit_ref(self) -> str:
        return self.external_id


class Product(models.Model):
    """A product the vendor licenses, with its family and risk class."""

    class RiskClass(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    family = models.CharField(max_length=100)
    risk_class = models.CharField(max_length=10, choices=RiskClass.choices, default=RiskClass.LOW)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def audit_ref(self) -> str:
        return self.code
