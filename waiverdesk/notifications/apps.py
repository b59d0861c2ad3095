from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "waiverdesk.notifications"
    label = "notifications"
