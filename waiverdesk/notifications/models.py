from django.conf import settings
from django.db import models


class Message(models.Model):
    """One email or webhook delivery, written in the transaction of the change it tells of
    (the outbox): a change that rolls back leaves no message behind."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"  # claimed by a worker until `claimed_until`
        SENT = "sent"
        DEAD = "dead"  # gave up: too many failures, or the endpoint is gone

    channel = models.CharField(max_length=10, choices=Channel.choices)
    event = models.CharField(max_length=60)
    object_ref = models.CharField(max_length=60, blank=True)
    message_id = models.CharField(max_length=60, unique=True, help_text="webhook-id")
    recipient = models.CharField(max_length=254, blank=True, help_text="An email address.")
    webhook = models.ForeignKey(
        "webhooks.Webhook", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="+", help_text="The reader of an event's email, written for them.",
    )  # fmt: skip
    context = models.JSONField(
        default=dict, blank=True,
        help_text="What an event's email tells, as it was when the event happened; its body "
        "is written from it at delivery.",
    )  # fmt: skip
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(help_text="The email text, or the exact JSON sent to a webhook.")
    attachment_name = models.CharField(max_length=100, blank=True)
    attachment = models.BinaryField(blank=True, default=b"", help_text="A file the email carries.")
    headers = models.JSONField(default=dict, blank=True, help_text="Extra email headers.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True, help_text="The claiming worker's token.")
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="message_due")]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} {self.recipient or self.webhook_id}"


class Preference(models.Model):
    """Which events a person does not want by email (all are sent unless muted)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    muted = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"{self.user_id}: muted {self.muted}"
