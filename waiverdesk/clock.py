"""The service's notion of now; one place so that a sandbox can move it later."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The current time in UTC."""
    return timezone.now()
