"""The metrics page (G4, F1): the period's figures with filters, as charts, CSV and the
leadership report."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core import cells
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.core.policy import PolicyError, load_policy
from waiverdesk.directory.models import Product
from waiverdesk.directory.services import require_role
from waiverdesk.policies import services as policies
from waiverdesk.waivers.stats import bars
from waiverdesk.web import page, sees_dashboard, show_refusal

from . import feedback, metrics, replay, report
from .metrics import Filters, Period

ADHERENCE = {
    "documentation_complete": "Evidence complete at submission",
    "reviews_on_time": "Governance reviews done by their due date",
    "expired_on_time": "Exceptions expired on time",
    "no_leakage": "Approved exceptions without leakage",
}


def _chosen(request: HttpRequest) -> tuple[Period, Filters, list[str]]:
    """The period and filters asked for; the current quarter when none (or a bad one) is."""
    this_quarter = Period.containing(clock.now().date())
    problems = []
    try:
        period = Period.parse(request.GET["period"]) if request.GET.get("period") else this_quarter
    except Invalid as exc:
        problems = [p.message for p in exc.problems]
        period = this_quarter
    filters = Filters(*(request.GET.get(k, "") for k in ("type", "family", "region")))
    return period, filters, problems


def _readable(request: HttpRequest) -> None:
    if not sees_dashboard(request.user):
        raise Denied("missing_role", "metrics are for approvers, control owners and oversight")


@page
def metrics_page(request: HttpRequest):
    _readable(request)
    period, filters, problems = _chosen(request)
    now = clock.now()
    figures = metrics.compute(period, filters, now)
    waits = metrics.bottlenecks(period, filters, now)
    hours = lambda table: bars({k: v["p50"] or 0 for k, v in table.items()})  # noqa: E731
    money = figures["concessions"]
    return render(request, "insight/metrics.html", {
        "period": period, "filters": filters, "problems": problems, "f": figures,
        "query": request.GET.urlencode(),
        "charts": [
            ("Median hours to decide, by tier", hours(figures["cycle_by_tier"])),
            ("Concessions by month", bars(money["by_month"], in_order=True)),
            ("Concessions by type", bars(money["by_type"])),
            (f"Concessions by product ({money['currency']}; a request on several products "
             "is split between them)", bars(money["by_product"])),
            ("Concessions by region", bars(money["by_region"])),
            ("Median hours a step waits, by approver role", hours(waits["by_role"])),
            ("Median hours a step waits, by type", hours(waits["by_type"])),
            ("Pending now: median hours waiting, by tier", hours(waits["pending"])),
        ],
        "adherence": [(ADHERENCE[k], v) for k, v in figures["adherence"].items()],
        "by_version": waits["by_version"],
        "ratings": feedback.summary(metrics.cohort(period, filters)),
        "types": sorted(policies.compiled(policies.active_version()).document.types),
        "families": sorted(set(Product.objects.values_list("family", flat=True))),
    })  # fmt: skip


@page
def metrics_csv(request: HttpRequest):
    _readable(request)
    period, filters, _ = _chosen(request)
    now = clock.now()
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="metrics-{period.label}.csv"'
    rows = metrics.flatten(metrics.compute(period, filters, now))
    rows += metrics.flatten(metrics.bottlenecks(period, filters, now), "wait")
    csv.writer(response).writerows(cells.row(r) for r in [("metric", "value"), *rows])
    return response


@page
def report_pdf(request: HttpRequest):
    _readable(request)
    period, _, _ = _chosen(request)
    response = HttpResponse(report.pdf(report.build(period)), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="waiverdesk-report-{period.label}.pdf"'
    return response


@page
@require_POST
def give_feedback(request: HttpRequest, reference: str):
    """A rating of the process from the waiver page."""
    try:
        rating = int(request.POST.get("rating", ""))
    except ValueError:
        rating = 0
    try:
        feedback.give(reference, request.user, rating, request.POST.get("comment", ""))
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
    else:
        messages.success(request, "Thank you for your rating.")
    return redirect("waiver", reference)


def _published(version) -> str:
    if version.is_active:
        return f"Version {version.number} is published and announced."
    return (
        f"Version {version.number} is proposed: it takes effect when a second policy admin "
        "approves it on this page."
    )


@page
def replay_page(request: HttpRequest):
    """Replay a draft policy over past requests; publish it, once convinced."""
    require_role(request.user, policies.POLICY_OWNERS, "replay or publish policy drafts")
    now = clock.now()
    draft = request.POST.get("draft") or policies.active_version().document
    since = request.POST.get("since") or (now.date() - timedelta(days=365)).isoformat()
    context = {"draft": draft, "since": since, "result": None, "problems": []}
    if request.method == "POST":
        try:
            policy = load_policy(draft)
            start = datetime.combine(date.fromisoformat(since), time(), UTC)
        except PolicyError as exc:
            context["problems"] = exc.problems
        except ValueError:
            context["problems"] = ["since: a date, like 2026-01-01"]
        else:
            # What is published is exactly the text that was replayed, byte for byte.
            replayed = request.POST.get("replayed") == policy.digest
            if "publish" in request.POST and not replayed:
                context["problems"] = [
                    "draft: the text changed after it was replayed; replay it again, "
                    "then publish what you have seen"
                ]
            elif "publish" in request.POST:
                try:
                    version = policies.publish(draft, by=request.user,
                                               note=request.POST.get("note", ""))  # fmt: skip
                except PolicyError as exc:
                    context["problems"] = exc.problems
                else:
                    messages.success(request, _published(version))
                    return redirect("policy-history")
            else:
                context["result"] = replay.replay(policy, start)
                context["replayed"] = policy.digest
    return render(request, "insight/replay.html", context)
