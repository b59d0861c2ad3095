from django.db import models

from waiverdesk.core.audit_chain import Entry, timestamp


class AuditEntry(models.Model):
    """One link of the append-only, hash-chained audit trail."""

    seq = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=40)
    object_ref = models.CharField(max_length=80)
    payload = models.TextField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    canonical = models.TextField(help_text="The exact text whose SHA-256 is `hash`.")

    class Meta:
        db_table = "audit_entry"
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["object_type", "object_ref", "seq"], name="audit_object_idx")
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_ref}"

    def as_chain_entry(self) -> Entry:
        return Entry(
            self.seq,
            timestamp(self.at),
            self.actor,
            self.action,
            self.object_type,
            self.object_ref,
            self.payload,
            self.prev_hash,
        )


class AuditHead(models.Model):
    """The chain's current length and head hash: one row, locked by every append."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_head"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_head_single_row")
        ]

    def __str__(self) -> str:
        return f"audit head at {self.seq}"
