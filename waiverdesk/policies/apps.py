from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "waiverdesk.policies"
    label = "policies"
