"""The pages that list requests (my requests, all requests, a customer's, a product's, the
inbox), their exports, saved filters, and bulk decisions from the inbox."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory.models import Customer, Product
from waiverdesk.directory.readers import reader_of
from waiverdesk.directory.services import roles_of
from waiverdesk.policies import services as policies
from waiverdesk.web import SEES_ALL, back_to, page

from . import access, exports, listing, services, stats
from .models import RouteStep, SavedFilter


def sees_all_requests(user) -> bool:
    return bool(roles_of(user) & SEES_ALL)


@page
def my_requests(request: HttpRequest):
    """The user's own requests."""
    mine = access.visible_to(request.user).filter(requester=request.user)
    return _list(request, mine, "My requests", show_requester=False)


@page
def all_requests(request: HttpRequest):
    """Every request the user may see: all of them for auditors and admins."""
    if not sees_all_requests(request.user):
        raise Denied("missing_role", "all requests are for auditors, admins and control owners")
    return _list(request, access.visible_to(request.user), "All requests")


@page
def customer_page(request: HttpRequest, external_id: str):
    """A customer, and the requests about it the user may see."""
    customer = get_object_or_404(Customer, external_id=external_id)
    theirs = access.visible_to(request.user).filter(customer=customer)
    return _list(request, theirs, customer.name, subject=customer)


@page
def product_page(request: HttpRequest, code: str):
    """A product, and the requests about it the user may see."""
    product = get_object_or_404(Product, code=code)
    about = access.visible_to(request.user).filter(products=product)
    return _list(request, about, f"{product.name} ({product.code})", subject=product)


def _list(request, waivers, title: str, subject=None, show_requester: bool = True):
    query = listing.read(request.GET)
    export = request.GET.get("export", "")
    if export in ("csv", "xlsx") and not query.problems:
        return _export(request, waivers, query, export)
    found = listing.page(waivers, query) if not query.problems else None
    context = {
        "title": title,
        "subject": subject,
        "show_requester": show_requester,
        **_frame(request, query, found),
        "rows": stats.with_waiting_on(found.rows) if found else [],
    }
    return render(request, "waivers/list.html", context, status=422 if query.problems else 200)


def _frame(request: HttpRequest, query: listing.Query, found: listing.Page | None) -> dict:
    """What every list page shows around its rows: the filters, the column headings that
    sort, the links to other pages, the exports and the saved filters."""
    params = request.GET.copy()
    for name in ("after", "before", "export"):
        params.pop(name, None)
    current = ("-" if query.descending else "") + query.sort

    def link(**changes) -> str:
        changed = params.copy()
        for key, value in changes.items():
            changed.pop(key, None)
            if value is not None:
                changed[key] = value
        encoded = changed.urlencode()
        return f"?{encoded}" if encoded else request.path

    columns = {}
    for key, (heading, _expression, _kind) in listing.SORTS.items():
        newest_first = key in ("created", "submitted", "amount", "risk")  # a first click
        if key == query.sort:  # a click turns it round
            target, sorted_ = ("" if query.descending else "-") + key, (
                "descending" if query.descending else "ascending")  # fmt: skip
        else:
            target, sorted_ = ("-" if newest_first else "") + key, "none"
        columns[key] = {"heading": heading, "href": link(sort=target), "sorted": sorted_}
    choices = listing.choices()
    return {
        "query": query,
        "params": params,
        "choices": choices,
        "problems": query.problems,
        "problem_at": {p.field: p.message for p in query.problems},
        "columns": columns,
        "type_labels": dict(choices["type"]),
        "found": found,
        "next_link": link(after=found.next) if found and found.next else None,
        "previous_link": link(before=found.previous) if found and found.previous else None,
        "first_link": link(),
        "sort": current,
        "saved": SavedFilter.objects.filter(user=request.user, path=request.path),
        "query_string": params.urlencode(),
        "csv_link": link(export="csv"),
        "xlsx_link": link(export="xlsx"),
    }


def _export(request: HttpRequest, waivers, query: listing.Query, kind: str):
    reader = reader_of(request.user, request)
    type_labels = dict(listing.choices()["type"])
    rows = listing.everything(waivers, query)
    stamp = clock.now().astimezone(reader.zone).strftime("%Y-%m-%d")
    name = f"requests-{stamp}.{kind}"
    if kind == "csv":
        response = StreamingHttpResponse(
            exports.as_csv(rows, reader, type_labels), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    book = exports.as_xlsx(rows, reader, type_labels)
    return FileResponse(
        book,
        as_attachment=True,
        filename=name,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


@page
@require_POST
def save_filter(request: HttpRequest):
    """Keep the list's current search under a name, for this person only."""
    name = request.POST.get("name", "").strip()[:80]
    path = request.POST.get("path", "")
    if not path.startswith("/") or path.startswith("//") or len(path) > 200:
        path = "/requests/"
    query = request.POST.get("query", "")[:2000]
    if not name:
        messages.error(request, "Name: give the filter a name, like 'EMEA renewals'")
        return redirect(f"{path}?{query}" if query else path)
    try:
        with transaction.atomic():
            SavedFilter.objects.update_or_create(
                user=request.user, name=name,
                defaults={"path": path, "query": query, "created_at": clock.now()},
            )  # fmt: skip
    except IntegrityError:
        messages.error(request, "Name: that name is taken; choose another")
    else:
        messages.success(request, f"Filter '{name}' saved.")
    return redirect(f"{path}?{query}" if query else path)


@page
@require_POST
def forget_filter(request: HttpRequest, pk: int):
    saved = get_object_or_404(SavedFilter, pk=pk, user=request.user)
    saved.delete()
    messages.success(request, f"Filter '{saved.name}' removed.")
    return back_to(request, "my-requests")


@page
def inbox(request: HttpRequest):
    """The steps the user may decide, oldest first, with amount, risk and the time waited
    against the SLA; apart from them, those waiting on the user's role that the user may not
    decide, with why."""
    user, now = request.user, clock.now()
    query = listing.read(request.GET, default_sort="waited")
    inbox = access.inbox_of(user)
    decidable_count, held_back_count = inbox.counts()
    user._decidable_count = decidable_count  # what the header's badge shows: see web
    known = None if query.filtered else decidable_count
    found = listing.page(inbox.decidable, query, known) if not query.problems else None
    held_back = []
    if held_back_count > 0:
        oldest = inbox.held_back.select_related("customer").order_by("created_at")
        held_back = [(w, services.may_act(w, user)) for w in oldest[: listing.PAGE_SIZE]]
    context = {
        **_frame(request, query, found),
        "rows": _steps(found.rows, now, inbox.roles) if found else [],
        "held_back": held_back,
        "held_back_count": held_back_count,
    }
    return render(request, "waivers/inbox.html", context, status=422 if query.problems else 200)


def _steps(waivers, now, roles) -> list[dict]:
    """Each waiver with its pending step (the one `roles` decide) and how long it has waited
    against its SLA."""
    rows = []
    for waiver, step in stats.with_waiting_on(waivers, roles):
        if step is None:
            continue
        waited = now - step.opened_at
        rows.append({
            "waiver": waiver,
            "step": step,
            "waited_hours": int(waited.total_seconds() // 3600),
            "overdue": waited > timedelta(hours=step.sla_hours),
        })  # fmt: skip
    return rows


def next_to_decide(user, after: str) -> str | None:
    """The reference of the oldest step `user` may decide next, other than `after`."""
    waiting = listing.ordered(access.decidable_by(user).exclude(reference=after),
                              listing.Query(sort="waited", descending=False))  # fmt: skip
    return waiting.values_list("reference", flat=True).first()


BULK_DECISIONS = {"approve": "approved", "reject": "rejected"}
BULK_MOST = 200


@page
@require_POST
def decide_many(request: HttpRequest):
    """The same decision on each selected request, each checked on its own (separation of
    duties included), each its own transaction and audit entry; the outcome of each shown."""
    decision = request.POST.get("decision", "")
    references = list(dict.fromkeys(r for r in request.POST.getlist("selected") if r))
    if len(references) > BULK_MOST:
        messages.error(request, f"Select at most {BULK_MOST} requests at once; none was decided")
        return redirect("inbox")
    if decision not in BULK_DECISIONS:
        messages.error(request, "Decision: choose approve or reject")
        return redirect("inbox")
    if not references:
        messages.error(request, "Select the requests to decide, in the first column")
        return redirect("inbox")
    comment = request.POST.get("comment", "")
    done, refused = [], []
    for reference in references:
        try:
            access.require_visible(request.user, reference)
            services.decide(reference, request.user, decision, comment)
        except services.NotFound:
            refused.append((reference, "not found, or not yours to see"))
        except Invalid as invalid:
            refused.append((reference, "; ".join(p.message for p in invalid.problems)))
        except Denied as denied:  # shown with its row; recorded if the service did not
            if not denied.audited:
                audit.refused_at_door("web", request, denied.code, denied.message)
            refused.append((reference, denied.message))
        else:
            done.append(reference)
    if done:
        messages.success(request, f"{BULK_DECISIONS[decision].capitalize()}: {', '.join(done)}.")
    for reference, why in refused:
        messages.error(request, f"{reference} not {BULK_DECISIONS[decision]}: {why}.")
    return redirect("inbox")


def waiting_on_people(waiver) -> str:
    """Who the request waits on now, by name: `Finance: fiona or felix; Legal: lena`."""
    policy = policies.compiled(waiver.policy_version)
    labels = {t.name: t.label or t.name for t in policy.tiers}
    parts = []
    for step in waiver.current_route().filter(status=RouteStep.State.PENDING):
        names = [u.username for u in services.deciders(waiver, step, policy, clock.now().date())]
        label = labels.get(step.tier, step.tier)
        parts.append(f"{label}: {' or '.join(names)}" if names else label)
    return "; ".join(parts)
