from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "waiverdesk.worker"
    label = "worker"
