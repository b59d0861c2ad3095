from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "waiverdesk.governance"
    label = "governance"
