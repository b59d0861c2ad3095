"""waiverdesk serve — the production WSGI server (gunicorn)."""

import os
import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from gunicorn.app.base import BaseApplication

from waiverdesk.wsgi import application


class Command(BaseCommand):
    help = "Serve waiverdesk with gunicorn: several workers, one database."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default=os.environ.get("WAIVERDESK_BIND", "127.0.0.1:8000"))
        parser.add_argument(
            "--workers", type=int, default=int(os.environ.get("WAIVERDESK_WORKERS", "2"))
        )

    def handle(self, *args, bind: str, workers: int, **options) -> None:
        if not (settings.SECRET_KEY_GIVEN or settings.SANDBOX or settings.DEVELOPMENT):
            raise CommandError(
                "set WAIVERDESK_SECRET_KEY to a long random value (it signs sessions and "
                "sign-in cookies), or WAIVERDESK_DEVELOPMENT=1 to try waiverdesk on this "
                "machine only"
            )
        self.stdout.write(f"waiverdesk serving on http://{bind} with {workers} workers")
        Server({"bind": bind, "workers": workers, "accesslog": "-", **control_socket(bind)}).run()


def control_socket(bind: str) -> dict:
    """Each server's own gunicorn control socket, under the data directory and named by the
    address it serves (gunicorn's default, one per home directory, is shared by every server
    of the machine). A Unix socket's path has at most 107 bytes: a data directory too deep
    for one has no control socket."""
    name = "gunicorn-" + re.sub(r"[^A-Za-z0-9.]+", "-", bind).strip("-") + ".ctl"
    path = Path(settings.DATA_DIR) / name
    if len(str(path).encode()) > 100:
        return {"control_socket_disable": True}
    return {"control_socket": str(path)}


class Server(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return application
