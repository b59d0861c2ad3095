from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "waiverdesk.billing"
    label = "billing"
