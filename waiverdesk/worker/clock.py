"""Moving a sandbox workspace's clock (T1); a production workspace refuses."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied

from .models import SandboxClock


def set_to(day: date, by: str = "system") -> None:
    """Move the clock so that today is `day` (the time of day keeps running)."""
    _move(lambda now: timedelta(days=(day - now.date()).days), by)


def advance(days: int, by: str = "system") -> None:
    """Move the clock `days` days forward."""
    _move(lambda now: timedelta(days=days), by)


def _move(delta, by: str) -> None:
    if not settings.SANDBOX:
        raise Denied(
            "production_clock",
            "this is a production workspace: its clock is real time "
            "(a sandbox sets WAIVERDESK_SANDBOX=1)",
        )
    with transaction.atomic():
        before = clock.now()
        row, _ = SandboxClock.objects.select_for_update().get_or_create(
            pk=1, defaults={"offset": timedelta(0), "moved_at": timezone.now()}
        )
        row.offset += delta(before)
        row.moved_at = timezone.now()
        row.save()
        audit.append(
            by,
            "clock.moved",
            None,
            {"from": before.isoformat(), "to": clock.now().isoformat()},
            object_type="clock",
            object_ref="sandbox",
        )
