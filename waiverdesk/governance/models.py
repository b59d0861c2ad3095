from django.contrib.auth.models import User
from django.db import models


class Campaign(models.Model):
    """One round of governance reviews (G2), for the exceptions of one cadence."""

    every_days = models.PositiveIntegerField(help_text="The cadence it belongs to.")
    opened_on = models.DateField()
    opened_at = models.DateTimeField()
    due_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    policy_version = models.ForeignKey("policies.PolicyVersion", on_delete=models.PROTECT)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [  # two workers at once open one campaign
            models.UniqueConstraint(fields=["every_days", "opened_on"], name="one_campaign_a_day")
        ]

    def __str__(self) -> str:
        return f"review campaign of {self.opened_on} (every {self.every_days} days)"


class Review(models.Model):
    """A control owner's re-attestation of one active exception."""

    class Outcome(models.TextChoices):
        STILL_NEEDED = "still_needed", "Still needed and within its criteria"
        AMEND = "amend", "Needs an amendment"
        TERMINATE = "terminate", "End it early"
        ENDED = "ended", "Ended before its review"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="reviews")
    waiver = models.ForeignKey("waivers.Waiver", on_delete=models.CASCADE, related_name="reviews")
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="reviews")
    due_at = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    rationale = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True, help_text="Owner told: overdue.")
    escalated_at = models.DateTimeField(null=True, blank=True, help_text="Compliance told.")

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["waiver"], condition=models.Q(outcome=""), name="one_open_review"
            )
        ]
        indexes = [models.Index(fields=["outcome", "due_at"], name="review_open_idx")]

    def __str__(self) -> str:
        return f"review of {self.waiver_id} in {self.campaign_id}"


class Digest(models.Model):
    """A pattern digest sent to compliance: when, and what it found."""

    at = models.DateTimeField()
    findings = models.JSONField(default=list)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"pattern digest of {self.at:%Y-%m-%d}"
