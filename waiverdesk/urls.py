from django.urls import path

from waiverdesk import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
]
