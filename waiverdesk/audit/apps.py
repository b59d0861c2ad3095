from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "waiverdesk.audit"
    label = "audit"
