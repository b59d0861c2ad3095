from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "waiverdesk.api"
    label = "api"
