"""The web pages of requests: my requests, the request form with its live preview, the
approver inbox, one page per waiver, and the dashboard."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import IN_FORCE, UNDER_REVIEW
from waiverdesk.core.policy import DIMENSIONS
from waiverdesk.directory.readers import current
from waiverdesk.insight import feedback
from waiverdesk.policies import services as policies
from waiverdesk.web import back_to, page, sees_dashboard, show_refusal

from . import (
    access,
    attachments,
    intake,
    listing,
    lists,
    notice,
    pending,
    request_form,
    services,
    stats,
)
from .detail import detail, evaluation_dict


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
    kept: list = []
    if request.method == "POST":
        values = request.POST
        body = request_form.body_from(type_name, request.POST)
        body["submit"] = "submit" in request.POST
        kept = pending.chosen(request.user, request.POST.getlist("pending"))
        chosen = request_form.uploads_from(request.FILES)
        again = pending.as_uploads(kept)
        try:
            if waiver is None:
                waiver = services.create(body, request.user, uploads=chosen + again)
            else:
                services.edit(waiver.reference, request.user, body, uploads=chosen + again)
        except Invalid as invalid:
            problems = invalid.problems
        except Denied as denied:
            if not denied.code.startswith("control_owner"):
                raise
            # A refused control owner is shown at its field, with everything else kept.
            problems, refused = [Problem("control_owner", denied.code, denied.message)], True
        else:
            pending.release(kept)
            done = "submitted for approval" if body["submit"] else "saved as a draft"
            messages.success(request, f"{waiver.reference} {done}.")
            return redirect("waiver", reference=waiver.reference)
        finally:
            pending.close(again)
        # The files chosen this time are kept for the corrected form, with those kept before.
        kept += pending.hold(request.user, chosen)
    elif waiver is not None:
        values = _as_form_values(intake.body_of(waiver))
    leftovers = request_form.fill(form, values, problems, kept)
    status = 403 if refused else 422 if problems else 200
    context = {
        "type_name": type_name,
        "kind": kind,
        "form": form,
        "leftovers": leftovers,
        "problem_count": len(problems),
        "kept_files": bool(kept),
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
    return render(request, "waivers/waiver.html", _waiver_context(request, waiver))


def _waiver_context(request: HttpRequest, waiver, kept: QueryDict | None = None,
                    problems: list[Problem] = ()) -> dict:  # fmt: skip
    """What the waiver page shows; after a refused decision, what the person typed (`kept`)
    and what was wrong (`problems`), each at its field."""
    shown = detail(waiver)
    policy = services.policy_of(waiver)
    user = request.user
    under_review = waiver.status in UNDER_REVIEW
    refusal, step, deciding_for = None, None, None
    if under_review:
        try:
            step, deciding_for = services.step_for(waiver, user, policy, clock.now().date())
        except Denied as denied:
            refusal = denied.message
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
        "deciding_tier": step.tier if step else "",
        "deciding_for": deciding_for.username if deciding_for else "",
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
        "from_inbox": (kept or request.GET).get("from") == "inbox",
        "kept": kept or QueryDict(),
        "kept_checks": (kept or QueryDict()).getlist("checks"),
        "previewable": attachments.PREVIEWABLE,
        "evidence_kinds": sorted(
            {
                *(kind.required_evidence if kind else []),
                *(a["kind"] for a in shown["attachments"]),
                "other",
            }
        ),
        "decide_problems": [(request_form.label_of(p.field), p.message) for p in problems],
        "owners": User.objects.filter(is_active=True).order_by("username"),
        "financials": _financials(shown, waiver),
        "waiting_on": lists.waiting_on_people(waiver) if under_review else "",
    }
    return context


def _financials(shown: dict, waiver) -> list[tuple[str, str]]:
    """The financial figures in words and money: as filed and, converted, in the base."""
    money, financials = waiver.money or {}, waiver.financials or {}
    reader = current()
    currency = financials.get("currency") or money.get("currency") or ""
    rows = []
    for name, label in request_form.FINANCIAL_LABELS.items():
        value = financials.get(name)
        if value is None:
            continue
        filed = reader.money(value, currency)
        base = money.get(f"{name}_base")
        if base is not None and money.get("base") and money.get("base") != currency:
            filed += f" ({reader.money(base, money['base'])} at {money.get('rate')})"
        rows.append((label, filed))
    return rows


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
            return _decide(request, reference)
        else:
            return redirect("waiver", reference=reference)
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
    else:
        messages.success(request, f"{reference} {done}.")
    return redirect("waiver", reference=reference)


@page
def customer_notice(request: HttpRequest, reference: str, as_pdf: bool = False):
    """The customer notice of an approved exception: previewed as it will be sent (with the
    cover note and copies typed so far), downloaded as a PDF, or sent; and the copies sent."""
    waiver = services.get(_visible(request, reference))
    if waiver.status not in IN_FORCE:
        raise services.NotFound(reference)
    reader = current()
    source = request.POST if request.method == "POST" else request.GET
    cover_note, cc = source.get("cover_note", ""), source.get("cc", "")
    issued = clock.now().astimezone(reader.zone).date()
    letter = notice.letter(waiver, request.user, reader, issued, cover_note)
    if as_pdf:
        response = HttpResponse(notice.pdf(letter), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{reference}-notice.pdf"'
        return response
    problems: list[Problem] = []
    if request.method == "POST" and request.POST.get("send"):
        try:
            to = notice.send(reference, request.user, clock.now(), cover_note, cc, reader)
        except Invalid as invalid:
            problems = invalid.problems
        except Denied as denied:
            show_refusal(request, denied)
            return redirect("customer-notice", reference=reference)
        else:
            copies = notice.copies_to(cc)
            also = f" and {', '.join(copies)}" if copies else ""
            messages.success(request, f"The notice of {reference} is on its way to {to}{also}.")
            return redirect("customer-notice", reference=reference)
    context = {"waiver": waiver, "letter": letter, "cover_note": cover_note, "cc": cc,
               "problems": problems, "problem_at": {p.field: p.message for p in problems},
               "sent": waiver.sent_notices.select_related("sent_by")}  # fmt: skip
    return render(request, "waivers/notice.html", context, status=422 if problems else 200)


@page
def sent_notice(request: HttpRequest, reference: str, pk: int):
    """A copy of a notice as it was sent, as its PDF."""
    waiver = services.get(_visible(request, reference))
    copy = waiver.sent_notices.filter(pk=pk).first()
    if copy is None:
        raise services.NotFound(reference)
    response = HttpResponse(bytes(copy.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{reference}-notice-{pk}.pdf"'
    return response


@page
def implementation(request: HttpRequest):
    """The implementation board: open tasks, soonest due first."""
    rows, shown = stats.board(request.user, clock.now().date(), request.GET.get("page", 1))
    return render(request, "waivers/implementation.html", {"rows": rows, "page": shown})


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
    labels = dict(listing.choices()["type"])
    return render(request, "waivers/dashboard.html", stats.dashboard(clock.now(), labels))


@page
@require_POST
def add_evidence(request: HttpRequest, reference: str):
    """Add evidence to a request after filing: files (several) and/or a text, of one kind;
    under review this starts a new round, as any change does."""
    _visible(request, reference)
    kind = request.POST.get("kind", "").strip()
    text = request.POST.get("text", "").strip()
    files = [services.Upload(kind, f.name, f, f.content_type or "")
             for f in request.FILES.getlist("files")]  # fmt: skip
    if not files and not text:
        messages.error(request, "Evidence: choose a file or write the evidence in words")
        return redirect("waiver", reference=reference)
    changes = {"evidence": {kind: text}} if text else {}
    try:
        services.edit(reference, request.user, changes, uploads=files)
    except (Invalid, Denied) as refused:
        show_refusal(request, refused)
    else:
        messages.success(request, f"Evidence added to {reference}.")
    return redirect("waiver", reference=reference)


@page
def attachment(request: HttpRequest, reference: str, pk: int):
    """A file of evidence, to whoever may see its request (anyone else gets a 404): a
    download, never rendered in the page's origin (nosniff, a sandboxing policy); with
    `?preview=1` an image or a PDF is shown in the browser instead, still sandboxed."""
    file = access.visible_attachment(request.user, reference, pk)
    path = attachments.path_for(file.sha256)
    if not path.is_file():
        raise Http404("no such file")
    kind = file.content_type if file.content_type in attachments.ALLOWED else ""
    inline = request.GET.get("preview") == "1" and kind in attachments.PREVIEWABLE
    response = FileResponse(path.open("rb"), as_attachment=not inline, filename=file.filename,
                            content_type=kind or "application/octet-stream")  # fmt: skip
    response["X-Content-Type-Options"] = "nosniff"
    # A PDF viewer does not run in a sandboxed document; nothing else is ever inline.
    sandbox = "" if inline and kind == "application/pdf" else "; sandbox"
    response["Content-Security-Policy"] = f"default-src 'none'{sandbox}"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


DONE = {"approve": "approval", "reject": "rejection", "request_changes": "request for changes"}


def _decide(request: HttpRequest, reference: str):
    """Record the person's decision; one with problems shows the page again with everything
    they typed and ticked, and the problems. From the inbox, the next request waiting for
    them opens."""
    post, user = request.POST, request.user
    conditions = []
    if any(post.get(f"condition_{k}", "").strip() for k in ("text", "owner", "due")):
        conditions.append({k: post.get(f"condition_{k}", "").strip()
                           for k in ("text", "owner", "due", "customer_visible")})  # fmt: skip
    decision = post.get("decision", "")
    try:
        services.decide(reference, user, decision, post.get("comment", ""), conditions,
                        post.getlist("checks"), tier=post.get("tier") or None)  # fmt: skip
    except Denied as denied:  # not theirs to decide: what they typed cannot help
        show_refusal(request, denied)
        return redirect("waiver", reference=reference)
    except Invalid as invalid:
        waiver = services.get(reference)
        context = _waiver_context(request, waiver, kept=post, problems=invalid.problems)
        return render(request, "waivers/waiver.html", context, status=422)
    waiver = services.get(reference)
    waiting = lists.waiting_on_people(waiver)
    said = f"Your {DONE.get(decision, 'decision')} of {reference} is recorded"
    messages.success(request, f"{said}; waiting on {waiting}." if waiting else f"{said}; "
                     f"the request is now {waiver.status.replace('_', ' ')}.")  # fmt: skip
    if post.get("from") == "inbox":
        following = lists.next_to_decide(user, after=reference)
        if following:
            return redirect(reverse("waiver", args=[following]) + "?from=inbox")
        return redirect("inbox")
    return redirect("waiver", reference=reference)


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
