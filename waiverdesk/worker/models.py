from django.db import models


class SandboxClock(models.Model):
    """How far a sandbox workspace's clock is moved from real time (one row, pk 1)."""

    offset = models.DurationField()
    moved_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"real time {'+' if self.offset.total_seconds() >= 0 else ''}{self.offset}"
