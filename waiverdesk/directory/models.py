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


class ExchangeRate(models.Model):
    """How many units of `currency` one unit of `base` buys from `day` on (ECB convention);
    reference data that converts requests' money to the policy's base currency."""

    base = models.CharField(max_length=3)
    currency = models.CharField(max_length=3)
    day = models.DateField()
    rate = models.DecimalField(max_digits=24, decimal_places=10)
    source = models.CharField(max_length=200, blank=True)
    imported_at = models.DateTimeField()

    class Meta:
        ordering = ["base", "currency", "-day"]
        constraints = [
            models.UniqueConstraint(fields=["base", "currency", "day"], name="rate_one_per_day"),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate} {self.currency} from {self.day}"

    @property
    def audit_ref(self) -> str:
        return f"{self.base}/{self.currency}/{self.day}"


class Profile(models.Model):
    """How a person reads figures and moments: their locale and time zone (blank: the
    browser's, else the site's default); and who they are at the identity provider."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    locale = models.CharField(max_length=20, blank=True, help_text="A CLDR locale: en_US, de_DE.")
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="An IANA zone: Europe/Berlin."
    )
    scim_external_id = models.CharField(
        max_length=255, blank=True, help_text="The provisioning client's id for this person."
    )
    scim_attributes = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the provisioning client says of this person "
        "beyond the user's own fields: display name, email addresses.",
    )
    scim_removed = models.BooleanField(
        default=False,
        help_text="Deleted by the provisioning client: deactivated and no longer listed to "
        "it (the person stays, for the trail).",
    )
    must_change_password = models.BooleanField(
        default=False, help_text="Signed in with a known password (the demo's): choose one first."
    )
    idp_subject = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        unique=True,
        help_text="The identity provider's `sub` for this person, once they signed in with it.",
    )

    def __str__(self) -> str:
        return f"{self.user_id}: {self.locale or '-'} {self.time_zone or '-'}"


class ProvisionedGroup(models.Model):
    """A group of the company's directory, provisioned over SCIM: its members hold the roles
    that WAIVERDESK_OIDC_ROLE_MAP gives the group's name."""

    display_name = models.CharField(max_length=255, unique=True)
    external_id = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="provisioned_groups")
    member_names = models.JSONField(
        default=dict, blank=True, help_text="How the directory names each member (by user id)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.display_name
