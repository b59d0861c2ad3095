from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "waiverdesk.directory"
    label = "directory"

    def ready(self) -> None:
        from . import signing_in  # noqa: F401 — connects the sign-in signals
