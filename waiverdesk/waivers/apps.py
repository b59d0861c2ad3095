from django.apps import AppConfig


class WaiversConfig(AppConfig):
    name = "waiverdesk.waivers"
    label = "waivers"
