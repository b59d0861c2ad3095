from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "waiverdesk.usage"
    label = "usage"
