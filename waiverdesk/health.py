from django.http import JsonResponse

from waiverdesk.audit.models import AuditEntry


def healthz(request):
    """Whether the service can reach its database, with the audit chain's length."""
    last = AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    return JsonResponse({"status": "ok", "audit_length": last or 0})
