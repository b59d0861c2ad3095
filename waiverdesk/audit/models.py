from django.db import models


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


class AuditCheckpoint(models.Model):
    """The chain's length and head hash at a moment: removing or rewriting entries behind it
    is found even if the rest of the chain is recomputed. Signed checkpoints also carry the
    Merkle root of the entries they cover, for inclusion proofs anyone can check."""

    seq = models.BigIntegerField(primary_key=True, help_text="Chain length at the checkpoint.")
    hash = models.CharField(max_length=64)
    at = models.DateTimeField()
    root = models.CharField(max_length=64, blank=True, help_text="RFC 6962 Merkle tree head.")
    public_key = models.CharField(max_length=64, blank=True, help_text="Ed25519, hex.")
    signature = models.CharField(max_length=128, blank=True, help_text="Over the statement.")
    frontier = models.TextField(
        blank=True, help_text="The subtree roots (hex, largest first) the next checkpoint extends."
    )

    class Meta:
        db_table = "audit_checkpoint"
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"checkpoint at {self.seq}"


class WitnessCosignature(models.Model):
    """A witness's answer to a signed checkpoint: its signature, given once it checked that
    the checkpoint extends the last one it cosigned, or why it refused. Not in the chain
    (as checkpoints are not): each is checked by its signature."""

    witness = models.CharField(max_length=60, help_text="Its name in WAIVERDESK_WITNESSES.")
    checkpoint = models.ForeignKey(
        AuditCheckpoint, on_delete=models.PROTECT, related_name="cosignatures"
    )
    public_key = models.CharField(max_length=64, blank=True, help_text="Ed25519, hex.")
    signature = models.CharField(max_length=128, blank=True, help_text="Over cosigned().")
    refused = models.TextField(blank=True, help_text="Why the witness refused, in its words.")
    at = models.DateTimeField()

    class Meta:
        db_table = "audit_cosignature"
        constraints = [
            models.UniqueConstraint(fields=["witness", "checkpoint"], name="one_answer_per_witness")
        ]

    def __str__(self) -> str:
        return f"{self.witness} on {self.checkpoint_id}"


class RefusalTally(models.Model):
    """Outside the chain: when a refusal was last written to the trail, and how many identical
    ones have come since, so that repeats within a minute are one entry, not a flood."""

    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of what was refused.")
    written_at = models.DateTimeField()
    repeats = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key[:12]}… +{self.repeats}"


class Subject(models.Model):
    """A person (or a contact who is not one) whose personal data the trail holds: named in
    it by a pseudonym, their free text sealed under their own key. Not in the chain: erasing
    them destroys the key, and what it sealed can no longer be read, while every hash and
    signature still holds."""

    pseudonym = models.CharField(max_length=20, unique=True)
    user = models.OneToOneField(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="subject"
    )
    email = models.CharField(
        max_length=254, blank=True, db_index=True, help_text="A contact's address, if no user."
    )
    key = models.BinaryField(null=True, help_text="AES-256-GCM; none once erased.")
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "audit_subject"

    def __str__(self) -> str:
        return self.pseudonym
