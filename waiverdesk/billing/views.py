"""The reconciliation page: invoice lines that differ from what exceptions authorize."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from waiverdesk.core.errors import Denied
from waiverdesk.directory.services import roles_of
from waiverdesk.web import page

from . import services
from .api import READERS


@page
def reconciliation(request: HttpRequest, as_csv: bool = False):
    """The discrepancies, on a page or as CSV."""
    if not roles_of(request.user) & READERS:  # the same readers as the API
        raise Denied("missing_role", "billing reconciliation is for finance and audit")
    found = services.discrepancies(request.GET.get("customer") or None)
    if as_csv:
        response = HttpResponse(services.to_csv(found), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="discrepancies.csv"'
        return response
    return render(request, "billing/reconciliation.html", {"rows": services.as_rows(found)})
