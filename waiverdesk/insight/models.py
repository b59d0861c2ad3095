from django.contrib.auth.models import User
from django.db import models


class Feedback(models.Model):
    """A requester's or approver's rating of the process after a decision (F1)."""

    waiver = models.ForeignKey("waivers.Waiver", on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=20, help_text="requester or approver")
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(fields=["waiver", "user"], name="one_feedback_per_person"),
            models.CheckConstraint(
                condition=models.Q(rating__gte=1, rating__lte=5), name="rating_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating}/5 on {self.waiver_id} by {self.user_id}"


class ReportSent(models.Model):
    """A scheduled leadership report mailed for one period, so it is mailed once."""

    period = models.CharField(max_length=20, unique=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return self.period
