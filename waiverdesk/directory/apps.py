from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "waiverdesk.directory"
    label = "directory"
