from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "waiverdesk.webhooks"
    label = "webhooks"
