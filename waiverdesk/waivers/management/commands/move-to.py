"""waiverdesk move-to DATABASE_URL — this workspace copied into an empty database (from
SQLite to PostgreSQL), its audit trail verified there."""

import re
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from waiverdesk import moving
from waiverdesk.commands import ActionCommand


class Command(BaseCommand):
    help = (
        "Copy everything (requests, the audit trail and its checkpoints, attachments' records, "
        "people, tokens, idempotency keys) into the empty database at DATABASE_URL, migrating "
        "it first, and verify the audit trail there. Stop the app servers and workers first; "
        "the attachments' files stay in WAIVERDESK_DATA_DIR."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("url", metavar="DATABASE_URL", help="postgres://user@host:5432/name")

    def handle(self, url: str, **_) -> None:
        if url.split("://", 1)[0] not in ("postgres", "postgresql", "pgsql", "sqlite"):
            raise CommandError("give the target as postgres://user[:password]@host:port/name")

        def say(line: str) -> None:
            sys.stderr.write(f"\r{line}\033[K")

        try:
            ActionCommand().guarded(lambda: self.moved(url, say))
        except moving.MoveFailed as failed:
            sys.stderr.write("\n")
            raise CommandError(f"not moved: {failed}") from None

    def moved(self, url: str, say) -> None:
        source = connection.settings_dict["NAME"]
        copied = moving.move_to(url, say)
        sys.stderr.write("\n")
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # not the password
        self.stdout.write(
            f"moved {sum(copied.values()):,} rows in {len(copied)} tables from {source}. "
            f"Set DATABASE_URL={shown} for every app server and worker."
        )
