from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "waiverdesk.privacy"
    label = "privacy"
