"""The notification preferences page: which events a person is emailed about."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect, render

from waiverdesk.web import page

from . import services
from .events import EVENTS


@page
def preferences(request: HttpRequest):
    """Tick the events to be emailed about; the others are muted."""
    user = request.user
    if request.method == "POST":
        wanted = set(request.POST.getlist("events"))
        muted = [e for e in EVENTS if e not in wanted]
        services.set_muted(user, muted, only=True, by=user.username)
        messages.success(request, "Your email preferences are saved.")
        return redirect("preferences")
    muted = set(services.muted(user))
    events = [(event, sentence, event not in muted) for event, sentence in EVENTS.items()]
    return render(request, "notifications/preferences.html", {"events": events})
