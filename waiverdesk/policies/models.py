from django.conf import settings
from django.db import models


class PolicyVersion(models.Model):
    """One policy document; exactly one is active, none is ever changed.

    Outside a sandbox a version is first proposed, and takes effect when a second policy
    admin approves it (four eyes on the rules); `published_by` is who approved it.
    """

    class State(models.TextChoices):
        PROPOSED = "proposed"
        PUBLISHED = "published"

    number = models.PositiveIntegerField(unique=True)
    document = models.TextField()
    sha256 = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PUBLISHED)
    proposed_at = models.DateTimeField(null=True, blank=True)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    changes = models.JSONField(
        default=list, blank=True, help_text="What changed from the version before, in sentences."
    )

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="policy_version_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"v{self.number}"

    @property
    def audit_ref(self) -> str:
        return f"v{self.number}"
