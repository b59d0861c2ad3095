"""The webhooks page, for admins: every endpoint with its state and its latest deliveries,
and a way to disable one."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from waiverdesk.directory.services import require_role
from waiverdesk.notifications.models import Message
from waiverdesk.web import page

from . import services
from .models import Webhook

RECENT = 10  # deliveries shown per endpoint


@page
def webhooks(request: HttpRequest):
    require_role(request.user, {"admin"}, "administer webhooks")
    hooks = list(Webhook.objects.select_related("created_by"))
    for hook in hooks:
        hook.recent = Message.objects.filter(webhook=hook).order_by("-created_at", "-id")[:RECENT]
    return render(request, "webhooks/webhooks.html", {"hooks": hooks, "recent": RECENT})


@page
@require_POST
def disable(request: HttpRequest, pk: int):
    require_role(request.user, {"admin"}, "administer webhooks")
    hook = get_object_or_404(Webhook, pk=pk)
    services.disable(hook, request.user, request.POST.get("reason", "").strip())
    messages.success(request, f"{hook.url} is disabled; nothing more is sent to it")
    return redirect("webhooks-admin")
