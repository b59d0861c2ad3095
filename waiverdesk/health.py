from django.http import JsonResponse

from waiverdesk.audit.models import AuditHead


def healthz(request):
    """Whether the service can reach its database, with the audit chain's length."""
    head = AuditHead.objects.filter(pk=1).first()
    return JsonResponse({"status": "ok", "audit_length": head.seq if head else 0})
