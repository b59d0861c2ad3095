from django.apps import AppConfig


class InsightConfig(AppConfig):
    name = "waiverdesk.insight"
    label = "insight"
