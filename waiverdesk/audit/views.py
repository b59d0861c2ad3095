"""The audit trail in the browser, for auditors and admins: entries filtered by waiver,
actor, action and date, each with its hash and the entry it chains to; the chain's
verification on demand; the latest signed checkpoint and its witnesses' answers; the export,
one waiver's proof and the proof that the trail extends an earlier checkpoint as downloads.
Every read is itself recorded in the trail."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.waivers.services import NotFound
from waiverdesk.web import page, sees_audit_trail

from . import services, subjects
from .models import AuditCheckpoint, AuditEntry

PAGE_SIZE = 50
FILTERS = {"waiver": "Waiver", "actor": "Actor", "action": "Action", "since": "From",
           "until": "Until"}  # fmt: skip


def _require_reader(user) -> None:
    if not sees_audit_trail(user):
        raise Denied("missing_role", "the audit trail is for auditors and admins")


@page
def trail(request: HttpRequest):
    """Entries newest first, 50 a page (`before` a number for older ones)."""
    _require_reader(request.user)
    params = request.GET
    problems: list[Problem] = []
    moments = {}
    zone = timezone.get_current_timezone()
    for name, shift in (("since", 0), ("until", 1)):  # "until" a day: to the end of it
        raw = params.get(name, "").strip()
        if raw:
            try:
                day = date.fromisoformat(raw) + timedelta(days=shift)
            except ValueError:
                message = f"{FILTERS[name]}: give a date, like 2026-11-30"
                problems.append(Problem(name, "invalid", message))
            else:
                moments[name] = datetime.combine(day, time(), zone)
    if "from" in params:  # the consistency proof from an earlier checkpoint, as a download
        earlier = params["from"].strip()
        try:
            if not (earlier.isdigit() and len(earlier) < 19):
                raise Invalid([Problem("from", "invalid", "give its size, a number of entries")])
            proved = services.consistency(int(earlier))
        except Invalid as refused:
            message = refused.problems[0].message
            problems.append(Problem("from", "invalid", f"Earlier checkpoint: {message}"))
        else:
            services.record_read(request.user.username, "consistency", {"from": int(earlier)})
            response = HttpResponse(json.dumps(proved, indent=1), content_type="application/json")
            name = f"consistency-{earlier}-{proved['new']['size']}.json"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
    before = params.get("before", "").strip()
    if before and not (before.isdigit() and len(before) < 19):
        problems.append(Problem("before", "invalid", "Page: this page link is out of date"))
    rows = [] if problems else services.entries_newest_first(
        waiver=params.get("waiver", "").strip()[:150], actor=params.get("actor", "").strip()[:150],
        action=params.get("action", "").strip()[:150], since=moments.get("since"),
        until=moments.get("until"), before=int(before) if before else None, limit=PAGE_SIZE + 1,
    )  # fmt: skip
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    verification = None
    if params.get("verify") == "1" and not problems:
        verification = services.verify()
    services.record_read(request.user.username, "trail page", {
        k: params.get(k, "") for k in (*FILTERS, "before", "verify") if params.get(k)
    })  # fmt: skip
    older = params.copy()
    older.pop("verify", None)
    if rows and more:
        older["before"] = str(rows[-1].seq)
    checkpoint = AuditCheckpoint.objects.exclude(signature="").order_by("-seq").first()
    context = {
        "rows": [
            (e, actor, ref, _payload(payload))
            for e, (actor, ref, payload) in zip(rows, subjects.shown(rows), strict=True)
        ],
        "problems": problems,
        "problem_at": {p.field: p.message for p in problems},
        "params": params,
        "older_link": f"?{older.urlencode()}" if rows and more else None,
        "checkpoint": checkpoint,
        "answers": checkpoint.cosignatures.order_by("witness") if checkpoint else [],
        "length": AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0,
        "verification": verification,
    }
    return render(request, "audit/trail.html", context, status=422 if problems else 200)


def _payload(payload: dict) -> str:
    """The payload in one line, shortened for the table (the whole is in the export)."""
    shown = json.dumps(payload, ensure_ascii=False, separators=(", ", ": "))
    return shown if len(shown) <= 300 else shown[:299] + "…"


@page
def export(request: HttpRequest):
    """The whole trail as JSON lines (checkpoints first), for the standalone verifier."""
    _require_reader(request.user)
    services.record_read(request.user.username, "export", {})

    response = StreamingHttpResponse(services.export_lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.jsonl"'
    return response


@page
def proof(request: HttpRequest, reference: str):
    """One waiver's entries with their inclusion proofs in the latest signed checkpoint."""
    _require_reader(request.user)
    try:
        proved = services.prove(reference)
    except Invalid:
        raise NotFound(reference) from None
    services.record_read(request.user.username, "proof", {"reference": reference})
    response = HttpResponse(json.dumps(proved, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{reference}-proof.json"'
    return response
