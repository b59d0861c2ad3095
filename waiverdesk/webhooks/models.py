from django.conf import settings
from django.db import models


class Webhook(models.Model):
    """An endpoint that receives signed events (Standard Webhooks)."""

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event types; empty means all.")
    secret = models.CharField(max_length=100, help_text="The signing secret, whsec_…")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    active = models.BooleanField(default=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="The first of the failures since the last success."
    )
    disabled_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url
