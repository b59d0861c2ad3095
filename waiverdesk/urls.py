from django.http import JsonResponse
from django.urls import path

from waiverdesk import health
from waiverdesk.api.api import api


def openapi(request):
    """The OpenAPI 3.1 document of /api/v1/, where SPEC §7 says clients find it."""
    return JsonResponse(api.get_openapi_schema(path_prefix="/api/v1/"))


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("api/openapi.json", openapi, name="openapi"),
]
