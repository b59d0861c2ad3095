"""The web pages of requests: my requests, the request form with its live preview, the
approver inbox, one page per waiver, and the dashboard."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import IN_FORCE, UNDER_REVIEW
from waiverdesk.core.policy import DIMENSIONS
from waiverdesk.insight import feedback
from waiverdesk.policies import services as policies
from waiverdesk.web import back_to, page, sees_dashboard, show_refusal

from . import access, attachments, intake, notice, request_form, services, stats
from .detail import detail, evaluation_dict


@page
def my_requests(request: HttpRequest):
    """The user's own requests, newest first, with what each waits on."""
    waivers = access.search(request.user, requester=request.user.username)
    return render(request, "waivers/mine.html", {"rows": stats.with_waiting_on(waivers[:200])})


@page
def new_request(request: HttpRequest):
    """The exception types the user may start, each with what it is for."""
    return render(request, "waivers/new.html", {"types": services.startable_types(request.user)})


@page
def request_form_page(request: HttpRequest, type_name: str, reference: str | None = None):
    """Fill in a request of one type (or change a draft): save it as a draft, or submit it."""
    policy = policies.compiled(policies.active_version())
    kind = policy.document.types.get(type_name)
    if kind is None:
        return redirect("new-request")
    waiver = services.get(_visible(request, reference)) if reference else None
    form = request_form.sections(type_name, kind)
    problems: list[Problem] = []
    refused = False
    values = QueryDict(mutable=True)
    if request.method == "POST":
        values = request.POST
        body = request_form.body_from(type_name, request.POST)
        body["submit"] = "submit" in request.POST
        try:
            uploads = request_form.uploads_from(request.FILES)
            if waiver is None:
                waiver = services.create(body, request.user, uploads=uploads)
            else:
                services.edit(waiver.reference, request.user, body, uploads=uploads)
        except Invalid as invalid:
            problems = invalid.problems
        except Denied as denied:
            if not denied.code.startswith("control_owner"):
                raise
            # A refused control owner is shown at its field, with everything else kept.
            problems, refused = [Problem("control_owner", denied.code, denied.message)], True
        else:
            done = "submitted for approval" if body["submit"] else "saved as a draft"
            messages.success(request, f"{waiver.reference} {done}.")
            return redirect("waiver", reference=waiver.reference)
    elif waiver is not None:
        values = _as_form_values(intake.body_of(waiver))
    leftovers = request_form.fill(form, values, problems)
    status = 403 if refused else 422 if problems else 200
    context = {
        "type_name": type_name,
        "kind": kind,
        "form": form,
        "leftovers": leftovers,
        "problem_count": len(problems),
        "waiver": waiver,
    }
    return render(request, "waivers/form.html", context, status=status)


@page
@require_POST
def preview(request: HttpRequest, type_name: str):
    """What the form as filled so far would need: the policy's answer, nothing saved."""
    body = request_form.body_from(type_name, request.POST)
    kinds = frozenset(k for k in request.POST.getlist("evidence_chosen") if k)
    try:
        simulation = services.simulate(body, kinds=kinds)
    except Invalid as invalid:
        return render(request, "waivers/_preview.html", {"incomplete": invalid.problems})
    evaluation = evaluation_dict(simulation.evaluation)
    context = {
        "evaluation": evaluation,
        "scores": _scores(evaluation["risk"], evaluation["risk"]["rules"]),
    }
    return render(request, "waivers/_preview.html", context)


@page
def waiver_page(request: HttpRequest, reference: str):
    """Everything about one waiver, and what the user may do with it."""
    waiver = services.get(_visible(request, reference))
    shown = detail(waiver)
    policy = services.policy_of(waiver)
    user = request.user
    under_review = waiver.status in UNDER_REVIEW
    refusal = services.may_act(waiver, user) if under_review else None
    kind = policy.document.types.get(waiver.type)
    context = {
        "w": shown,
        "waiver": waiver,
        "type_label": kind.label if kind else waiver.type,
        "tier_labels": {t.name: t.label or t.name for t in policy.tiers},
        "may": {
            action: services.allowed(waiver, user, action)
            for action in ("edit", "submit", "withdraw", "terminate", "override_risk")
        },
        "may_decide": under_review and refusal is None,
        "decide_refusal": refusal,
        "checks": [c for c in (kind.checks if kind else []) if c.name not in waiver.checks],
        "dimensions": DIMENSIONS,
        "scores": _scores(shown["risk"], shown["risk_rules"]),
        "scope": {k: v for k, v in shown["scope"].items() if v not in (None, "", [])},
        "justification": [
            (label, shown["justification"].get(path.split(".")[1], ""))
            for path, (label, _prompt) in request_form.JUSTIFICATION.items()
        ],
        "today": clock.now().date().isoformat(),
        "doable": {t.pk for t in waiver.tasks.all() if services.may_do(t, user)},
        "usage_bars": stats.usage_bars(shown["usage"]),
        "rate_as": feedback.role_of(waiver, user),
        "rated": waiver.feedback.filter(user=user).first(),
    }
    return render(request, "waivers/waiver.html", context)


@page
@require_POST
def act(request: HttpRequest, reference: str, action: str):
    """One action on a waiver from its page; refusals and problems are shown on the page."""
    _visible(request, reference)
    post, user = request.POST, request.user
    try:
        if action == "submit":
            services.submit(reference, user)
            done = "submitted for approval"
        elif action == "withdraw":
            services.withdraw(reference, user, post.get("reason", ""))
            done = "withdrawn"
        elif action == "terminate":
            services.terminate(reference, user, post.get("reason", ""))
            done = "terminated"
        elif action == "override":
            score = post.get("score", "")
            services.override_risk(
                reference,
                user,
                post.get("dimension", ""),
                int(score) if score.isdigit() else score,
                post.get("rationale", ""),
            )
            done = "risk overridden; the request is routed again"
        elif action == "decide":
            conditions = []
            if any(post.get(f"condition_{k}", "").strip() for k in ("text", "owner", "due")):
                conditions.append(
                    {
                        k: post.get(f"condition_{k}", "").strip()
                        for k in ("text", "owner", "due", "customer_visible")
                    }  # fmt: skip
                )
            decision = post.get("decision", "")
            services.decide(
                reference,
                user,
                decision,
                post.get("comment", ""),
                conditions,
                post.getlist("checks"),
            )
            done = {"approve": "approved", "reject": "rejected"}.get(
                decision, "returned for changes"
            )
        else:
            return redirect("waiver", reference=reference)
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
    else:
        messages.success(request, f"{reference} {done}.")
    return redirect("waiver", reference=reference)


@page
def inbox(request: HttpRequest):
    """The steps the user may act on, oldest first, with their age against the SLA."""
    return render(request, "waivers/inbox.html", {"rows": stats.inbox(request.user, clock.now())})


@page
def customer_notice(request: HttpRequest, reference: str, as_pdf: bool = False):
    """The customer notice of an approved exception, to read, download or send."""
    waiver = services.get(_visible(request, reference))
    if waiver.status not in IN_FORCE:
        raise services.NotFound(reference)
    if as_pdf:
        response = HttpResponse(notice.pdf(waiver), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{reference}-notice.pdf"'
        return response
    title, paragraphs = notice.text(waiver)
    context = {"waiver": waiver, "title": title, "paragraphs": paragraphs}
    return render(request, "waivers/notice.html", context)


@page
@require_POST
def send_notice(request: HttpRequest, reference: str):
    """Email the notice to the customer's contact address."""
    _visible(request, reference)
    try:
        to = notice.send(reference, request.user, clock.now())
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
    else:
        messages.success(request, f"The notice of {reference} is on its way to {to}.")
    return redirect("customer-notice", reference=reference)


@page
def implementation(request: HttpRequest):
    """The implementation board: open tasks, soonest due first."""
    rows = stats.board(request.user, clock.now().date())
    return render(request, "waivers/implementation.html", {"rows": rows})


@page
@require_POST
def task_done(request: HttpRequest, reference: str, pk: int):
    """Mark one task of a waiver done, from the waiver page or the board."""
    _visible(request, reference)
    try:
        task = services.complete_task(pk, request.user, request.POST.get("note", ""))
    except Denied as denied:
        show_refusal(request, denied)
    else:
        messages.success(request, f"{reference}: {task.title} is done.")
    return back_to(request, "implementation")


@page
def dashboard(request: HttpRequest):
    """Requests by status and type, pending steps by tier, time to decision."""
    if not sees_dashboard(request.user):
        raise Denied("missing_role", "the dashboard is for approvers, control owners and oversight")
    return render(request, "waivers/dashboard.html", stats.dashboard(clock.now()))


@page
def attachment(request: HttpRequest, reference: str, pk: int):
    """A file of evidence, to whoever may see its request (anyone else gets a 404): always
    a download, never rendered in the page's origin (nosniff, a sandboxing policy)."""
    file = access.visible_attachment(request.user, reference, pk)
    path = attachments.path_for(file.sha256)
    if not path.is_file():
        raise Http404("no such file")
    kind = file.content_type if file.content_type in attachments.ALLOWED else ""
    response = FileResponse(path.open("rb"), as_attachment=True, filename=file.filename,
                            content_type=kind or "application/octet-stream")  # fmt: skip
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _visible(request: HttpRequest, reference: str) -> str:
    return access.require_visible(request.user, reference)


def _scores(risk: dict, rules: dict) -> list[tuple[str, int | None, str]]:
    """Each risk dimension with its score and the rule that gave it."""
    return [(d, risk.get(d), rules.get(d, "")) for d in DIMENSIONS]


def _as_form_values(body: dict) -> QueryDict:
    """A stored request as the values of its form."""
    values = QueryDict(mutable=True)
    for key in ("customer", "license_type", "region", "start", "end", "control_owner"):
        values[key] = body.get(key) or ""
    values.setlist("products", body["products"])
    for section in ("scope", "financials", "justification"):
        for key, value in body[section].items():
            values[f"{section}.{key}"] = "" if value is None else str(value)
    if body["outcomes"]:
        values["outcomes.metric"] = body["outcomes"][0].get("metric", "")
        values["outcomes.target"] = str(body["outcomes"][0].get("target", ""))
    return values
