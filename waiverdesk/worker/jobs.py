"""The periodic jobs, in the order a tick runs them: the year's reference numbers, the clock's
changes, late approval steps,
reminders, usage,
governance reviews, the pattern digest and the leadership report, the retention of personal
data and records, then deliveries, an
audit checkpoint and its witnesses' cosignatures.
Each is idempotent and safe with several workers at once: changes are conditional updates,
claimed rows or rows recorded once."""

from __future__ import annotations

from datetime import datetime

from waiverdesk.api import idempotency
from waiverdesk.audit import services as audit
from waiverdesk.audit import witnesses
from waiverdesk.governance import patterns, reviews
from waiverdesk.insight import report
from waiverdesk.notifications import services as notify
from waiverdesk.privacy import services as privacy
from waiverdesk.usage import utilization
from waiverdesk.waivers import pending, services, sunset

# Each job takes (now, dry_run) and says what it did (or would do) as (reference, what).
JOBS = (
    services.prepare_references,
    services.sweep,
    services.chase,
    sunset.remind,
    sunset.check_conditions,
    sunset.check_tasks,
    utilization.scan,
    reviews.run,
    patterns.send_digest,
    report.send_scheduled,
    idempotency.forget_expired,
    pending.forget_stale,
    privacy.apply_retention,
)


def tick(now: datetime, dry_run: bool = False) -> list[str]:
    """Run every job once; say what was (or, with `dry_run`, would be) done."""
    lines = [f"{ref}: {what}" for job in JOBS for ref, what in job(now, dry_run)]
    if dry_run:
        lines += [f"would send {m.channel} {m.event} for {m.object_ref}" for m in notify.due(now)]
    else:
        sent = notify.deliver(now)
        if sent:
            lines.append("messages: " + ", ".join(f"{n} {k}" for k, n in sorted(sent.items())))
        if taken := audit.checkpoint(now):
            lines.append(f"audit checkpoint at {taken.seq}: root {taken.root}")
        lines += [f"{who}: {what}" for who, what in witnesses.send(now)]
    return lines
