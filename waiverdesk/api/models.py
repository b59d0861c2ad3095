from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token: only its SHA-256 is stored; the token itself is shown once."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"
        DECIDE = "decide"
        ADMIN = "admin"
        SCIM = "scim"  # provisioning people from the company's directory (/scim/v2/)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id}, {self.name})"

    @property
    def audit_ref(self) -> str:
        return f"{self.prefix}…"


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an Idempotency-Key, to replay on retries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, help_text="Empty while running.")
    response = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")
        ]

    def __str__(self) -> str:
        return self.key
