from django.db import DatabaseError, connection
from django.http import JsonResponse


def healthz(request):
    """Whether the service can reach its database: 200 "ok" or 503 "unavailable", and
    nothing more (what the trail holds is for those who may read it, by the API)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
