"""The policy pages: the active policy in plain language and as an FAQ, its history, diffs."""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from waiverdesk.core import explain
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory.services import roles_of
from waiverdesk.web import page, show_refusal

from . import services
from .models import PolicyVersion


@page
def policy_page(request: HttpRequest):
    """The active policy explained: types, limits, who approves what, what adds review."""
    version = services.active_version()
    document = services.compiled(version).document
    tiers = [(t, explain.condition(t.when)) for t in document.tiers]
    triggers = [(t, explain.condition(t.when)) for t in document.triggers]
    context = {
        "version": version,
        "document": document,
        "tiers": tiers,
        "triggers": triggers,
        "faq": explain.faq(document),
        "may_replay": bool(roles_of(request.user) & services.POLICY_OWNERS),
    }
    return render(request, "policies/policy.html", context)


@page
def history(request: HttpRequest):
    """Every version, newest first; proposals wait there for a second policy admin."""
    versions = PolicyVersion.objects.select_related("published_by", "proposed_by")
    context = {
        "versions": versions.defer("document").order_by("-number"),
        "may_approve": bool(roles_of(request.user) & services.POLICY_OWNERS),
    }
    return render(request, "policies/history.html", context)


@page
@require_POST
def approve(request: HttpRequest, number: int):
    """A second policy admin puts a proposed version into force."""
    try:
        version = services.approve(number, request.user)
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
    else:
        messages.success(request, f"Version {version.number} is in force and announced.")
    return redirect("policy-history")


@page
def diff(request: HttpRequest, old: int, new: int):
    """What changed in the policy text from version `old` to version `new`."""
    found = {v.number: v for v in PolicyVersion.objects.filter(number__in=[old, new])}
    if old not in found or new not in found:
        raise Http404("no such policy version")
    lines = difflib.unified_diff(
        found[old].document.splitlines(),
        found[new].document.splitlines(),
        f"v{old}",
        f"v{new}",
        lineterm="",
    )
    rows = [(line[:1] if line[:1] in "+-@" else " ", line) for line in lines]
    return render(
        request, "policies/diff.html", {"old": found[old], "new": found[new], "rows": rows}
    )
