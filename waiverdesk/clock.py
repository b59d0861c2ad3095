"""The service's notion of now: real UTC time, or in a sandbox workspace the time its
clock has been moved to (`waiverdesk clock set|advance`)."""

from datetime import datetime

from django.conf import settings
from django.utils import timezone


def now() -> datetime:
    """The current time in UTC (moved, in a sandbox)."""
    real = timezone.now()
    if not settings.SANDBOX:
        return real
    from waiverdesk.worker.models import SandboxClock  # the model needs the app registry

    offset = SandboxClock.objects.filter(pk=1).values_list("offset", flat=True).first()
    return real + offset if offset else real
