"""/api/v1/audit/verify: anyone with a copy of the trail can check it; here the service does."""

from __future__ import annotations

from ninja import Router, Schema

from waiverdesk.api.api import ERRORS, need
from waiverdesk.directory.services import require_role

from . import services

router = Router(tags=["audit"])


class VerificationOut(Schema):
    ok: bool
    length: int
    head: str
    first_bad_seq: int | None
    reason: str


@router.get("/verify", response={200: VerificationOut, **ERRORS})
def verify(request):
    """Whether the whole chain verifies, its length and head hash."""
    need(request, "read")
    require_role(request.user, {"auditor", "admin"}, "verify the audit trail")
    result = services.verify()
    return result.__dict__
