from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "waiverdesk.entitlements"
    label = "entitlements"
