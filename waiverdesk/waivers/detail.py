"""A waiver, or an evaluation, as the plain data every interface shows (SPEC §7)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from waiverdesk import clock
from waiverdesk.audit import subjects
from waiverdesk.audit.models import AuditEntry
from waiverdesk.core.evaluation import Evaluation
from waiverdesk.usage import utilization

from .models import Waiver

USED_STATES = frozenset({"active", "expired", "terminated", "superseded"})


def evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "eligible": evaluation.eligible,
        "problems": [
            {"field": p.field, "code": p.code, "message": p.message} for p in evaluation.problems
        ],
        "risk": {
            **evaluation.risk.as_dict(),
            "rules": {d: s.rule for d, s in evaluation.risk.scores.items()},
        },
        "triggers": [
            {"name": t.name, "flag": t.flag, "add_tiers": list(t.add_tiers)}
            for t in evaluation.triggers
        ],
        "route": [
            {"tier": s.tier, "role": s.role, "required": s.required, "reasons": list(s.reasons)}
            for s in evaluation.route
        ],
    }


def detail(waiver: Waiver) -> dict[str, Any]:
    """Everything about one waiver: facts, risk, route with approvals, decision, timeline.
    What its service has just written is taken as it is in hand (Waiver.in_hand)."""
    steps = waiver.current_steps()
    approvals = defaultdict(list, waiver.in_hand.approvals)
    products, attachments = waiver.part("products"), waiver.part("attachments")
    conditions, tasks = waiver.part("conditions"), waiver.part("tasks")
    return {
        "reference": waiver.reference,
        "status": waiver.status,
        "kind": waiver.kind,
        "type": waiver.type,
        "policy_version": waiver.policy_version.number,
        "requester": waiver.requester.username,
        "control_owner": waiver.control_owner.username if waiver.control_owner else None,
        "customer": waiver.customer.external_id,
        "account_owner": waiver.customer.account_owner.username
        if waiver.customer.account_owner
        else None,
        "products": sorted(p.code for p in products),
        "license_type": waiver.license_type,
        "region": waiver.region,
        "start": waiver.start.isoformat(),
        "end": waiver.end.isoformat(),
        "scope": waiver.scope,
        "financials": waiver.financials,
        "money": waiver.money,  # in the base currency, at the rate of the submission
        "justification": waiver.justification,
        "evidence": waiver.evidence,
        "outcomes": waiver.outcomes,
        "attachments": [
            {
                "id": a.pk,
                "kind": a.kind,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }  # fmt: skip
            for a in attachments
        ],
        "risk": {
            k: waiver.risk.get(k)
            for k in ("financial", "operational", "reputational", "compliance", "overall")
        },
        "risk_rules": waiver.risk.get("rules", {}),
        "risk_overrides": waiver.risk_overrides,
        "triggers": waiver.triggers,
        "checks": waiver.checks,
        "round": waiver.round,
        "route": [
            {
                "tier": s.tier,
                "role": s.role,
                "required": s.required,
                "status": s.status,
                "reasons": s.reasons,
                "sla_hours": s.sla_hours,
                "stage": s.stage,
                "beside": [o.tier for o in steps if o.stage == s.stage and o.pk != s.pk],
                "escalated_to": s.escalate_to if s.escalated_at else None,
                "approvals": [
                    {
                        "user": a.user.username,
                        "on_behalf_of": a.on_behalf_of.username if a.on_behalf_of else None,
                        "decision": a.decision,
                        "comment": a.comment,
                        "at": a.at.isoformat(),
                    }
                    for a in approvals[s.pk]
                ],
            }
            for s in steps
        ],
        "decision": {
            "outcome": waiver.decision,
            "rationale": waiver.decision_rationale,
            "at": waiver.decided_at.isoformat(),
            "approvers": sorted(
                {a.user.username for s in steps for a in approvals[s.pk] if a.decision == "approve"}
            ),
        }
        if waiver.decided_at
        else None,
        "conditions": [
            {
                "text": c.text,
                "owner": c.owner.username,
                "due": c.due.isoformat(),
                "status": c.status,
                "customer_visible": c.customer_visible,
            }
            for c in conditions
        ],
        "tasks": [
            {
                "id": t.pk,
                "name": t.name,
                "title": t.title,
                "role": t.role,
                "owner": t.owner.username if t.owner else None,
                "required": t.required,
                "due": t.due.isoformat(),
                "status": t.status,
                "done_by": t.done_by.username if t.done_by else None,
                "done_at": t.done_at.isoformat() if t.done_at else None,
            }
            for t in tasks
        ],
        "predecessor": waiver.predecessor.reference if waiver.predecessor else None,
        "renewal_count": waiver.renewal_count,
        "timeline": timeline(waiver.reference),
        "usage": usage_of(waiver),
    }


def usage_of(waiver: Waiver) -> dict[str, Any] | None:
    """Use against what the exception allows, once it has started (None before)."""
    if waiver.status not in USED_STATES:
        return None
    found = utilization.of(waiver, clock.now().date())
    return {
        "allowed": found.allowed,
        "peak": found.peak,
        "months": found.months,
        "findings": [{"kind": k, "detail": d} for k, d in found.findings],
    }


def timeline(reference: str) -> list[dict[str, Any]]:
    """What happened to a waiver, from its audit entries."""
    entries = list(AuditEntry.objects.filter(object_type="waiver", object_ref=reference))
    return [
        {
            "seq": e.seq,
            "at": e.at.isoformat(),
            "actor": actor,
            "action": e.action,
            **{k: v for k, v in payload.items() if k in _TIMELINE_KEYS},
        }
        for e, (actor, _ref, payload) in zip(entries, subjects.shown(entries), strict=True)
    ]


_TIMELINE_KEYS = {
    "from",
    "to",
    "decision",
    "comment",
    "tier",
    "reason",
    "code",
    "message",
    "attempted",
    "changed",
    "dimension",
    "new",
    "rationale",
    "on_behalf_of",
    "material",
    "approvals_reset",
    "evidence_added",
}
