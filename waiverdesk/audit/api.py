"""/api/v1/audit: whether the chain verifies, and for auditors the raw trail and proofs.
Reading the trail is itself recorded in it."""

from __future__ import annotations

from django.http import Http404
from ninja import Query, Router, Schema
from pydantic import Field

from waiverdesk.api.api import ERRORS, need
from waiverdesk.core.audit_chain import payload_json
from waiverdesk.directory.services import require_role

from . import services, subjects
from .models import AuditEntry

router = Router(tags=["audit"])
READERS = {"auditor", "admin"}


class VerificationOut(Schema):
    ok: bool
    length: int
    head: str
    first_bad_seq: int | None
    reason: str


class EntryOut(Schema):
    seq: int
    at: str
    actor: str
    action: str
    object_type: str
    object_ref: str
    payload: str
    hash: str
    canonical: str


class EntryFilter(Schema):
    object_ref: str = ""
    after: int = Field(0, ge=0, description="entries after this number")
    limit: int = Field(100, ge=1, le=1000)


class CheckpointOut(Schema):
    size: int
    root: str
    head: str
    at: str
    public_key: str
    signature: str


class ProvedEntryOut(Schema):
    seq: int
    hash: str
    canonical: str
    proof: list[str]


class ConsistencyOut(Schema):
    old: CheckpointOut
    new: CheckpointOut
    proof: list[str]


class ConsistencyQuery(Schema):
    from_: int = Field(
        ..., alias="from", ge=1, description="the size of the older signed checkpoint"
    )


class ProofOut(Schema):
    reference: str
    checkpoint: CheckpointOut
    entries: list[ProvedEntryOut]


@router.get("/verify", operation_id="verifyAudit", response={200: VerificationOut, **ERRORS})
def verify(request):
    """Whether the whole chain verifies, its length and head hash."""
    need(request, "read")
    require_role(request.user, READERS, "verify the audit trail")
    result = services.verify()
    return result.__dict__


@router.get("/entries", operation_id="listAuditEntries", response={200: list[EntryOut], **ERRORS})
def entries(request, filters: Query[EntryFilter]):
    """Raw entries in order (auditors and admins); the read is recorded in the trail."""
    need(request, "read")
    require_role(request.user, READERS, "read the audit trail")
    rows = AuditEntry.objects.filter(seq__gt=filters.after).order_by("seq")
    if filters.object_ref:
        rows = rows.filter(object_ref__in=subjects.names_for(filters.object_ref))
    rows = list(rows[: filters.limit])
    shown = subjects.shown(rows)
    found = [{**e.__dict__, "at": e.at.isoformat(), "actor": actor, "object_ref": ref,
              "payload": payload_json(payload)}
             for e, (actor, ref, payload) in zip(rows, shown, strict=True)]  # fmt: skip
    services.record_read(request.user.username, "entries", filters.dict())
    return found


@router.get("/proofs/{reference}", operation_id="getAuditProof", response={200: ProofOut, **ERRORS})
def proof(request, reference: str):
    """Inclusion proofs of one waiver's entries in the latest signed checkpoint, to check
    with the standalone verifier."""
    need(request, "read")
    require_role(request.user, READERS, "read the audit trail")
    if not AuditEntry.objects.filter(object_type="waiver", object_ref=reference).exists():
        raise Http404
    found = services.prove(reference)
    services.record_read(request.user.username, "proof", {"reference": reference})
    return found


@router.get("/consistency", operation_id="getAuditConsistency",
            response={200: ConsistencyOut, **ERRORS})  # fmt: skip
def consistency(request, q: Query[ConsistencyQuery]):
    """The proof that the latest signed checkpoint's tree extends the signed checkpoint of
    `from` entries (RFC 9162), to check with the standalone verifier."""
    need(request, "read")
    require_role(request.user, READERS, "read the audit trail")
    found = services.consistency(q.from_)
    services.record_read(request.user.username, "consistency", {"from": q.from_})
    return found
