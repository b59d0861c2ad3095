"""Witnesses: outside parties that cosign each signed checkpoint (WAIVERDESK_WITNESSES).

The worker sends a witness the latest signed checkpoint with the proof that it extends the
last one the witness cosigned (RFC 9162 consistency), as JSON by HTTP POST:

    {"log": KEY, "old": CHECKPOINT or null, "new": CHECKPOINT, "proof": [HEX, …]}

A witness that checks the proof (and the log's signature) answers 200 with
{"public_key": HEX, "signature": HEX}, its Ed25519 signature of `verifier.cosigned(new)`;
one that finds the checkpoint does not extend its last answers with an error status and
{"error": "why"}. Cosignatures are stored beside the checkpoints and carried by the export
and consistency proofs; a refusal is stored, logged as an error and said by the worker,
once for each checkpoint. A witness that cannot be reached, or answers 5xx, is asked again at
the next tick.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from waiverdesk.core.verifier import cosignature_ok

from . import services
from .models import AuditCheckpoint, WitnessCosignature

log = logging.getLogger(__name__)


def send(now: datetime) -> list[tuple[str, str]]:
    """Ask each configured witness to cosign the latest signed checkpoint it has not
    answered; say what each did."""
    latest = AuditCheckpoint.objects.exclude(signature="").order_by("-seq").first()
    if latest is None:
        return []
    done = []
    for name, url in settings.AUDIT_WITNESSES.items():
        if WitnessCosignature.objects.filter(witness=name, checkpoint=latest).exists():
            continue
        if said := _ask(name, url, latest, now):
            done.append((f"witness {name}", said))
    return done


def _ask(name: str, url: str, latest: AuditCheckpoint, now: datetime) -> str:
    last = (
        WitnessCosignature.objects.filter(witness=name, refused="")
        .select_related("checkpoint")
        .order_by("-checkpoint_id")
        .first()
    )
    new = services.checkpoint_json(latest)
    body = {
        "log": latest.public_key,
        "old": services.checkpoint_json(last.checkpoint) if last else None,
        "new": new,
        "proof": [h.hex() for h in services.consistency_proof(last.checkpoint_id, latest.seq)]
        if last
        else [],
    }
    try:
        status, answer = _post(url, body)
    except (OSError, ValueError) as exc:
        log.warning("witness %s could not be reached at %s: %s", name, url, exc)
        return ""
    if status >= 500:  # the witness's own trouble, not an answer: ask again next time
        log.warning("witness %s answered %s at %s", name, status, url)
        return ""
    if status == 200 and cosignature_ok(new, answer):
        answer_row = {"public_key": answer["public_key"], "signature": answer["signature"]}
        said = f"cosigned the checkpoint at {latest.seq}"
    else:
        why = answer.get("error")[:500] if isinstance(answer.get("error"), str) else ""
        if status == 200:
            why = "its cosignature does not verify"
        answer_row = {"refused": why or f"it answered {status}"}
        said = f"REFUSED the checkpoint at {latest.seq}: {answer_row['refused']}"
        log.error("witness %s %s", name, said)
    try:
        with transaction.atomic():
            WitnessCosignature.objects.create(witness=name, checkpoint=latest, at=now,
                                              **answer_row)  # fmt: skip
    except IntegrityError:
        return ""  # another worker stored its answer first
    return said


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.AUDIT_WITNESS_TIMEOUT) as response:
            status, text = response.status, response.read(65536)
    except urllib.error.HTTPError as refused:
        status, text = refused.code, refused.read(65536)
    try:
        answer = json.loads(text or b"{}")
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}
