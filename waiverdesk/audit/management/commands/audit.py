"""waiverdesk audit verify | export"""

import json

from django.core.management.base import CommandError

from waiverdesk.audit import services
from waiverdesk.audit.models import AuditEntry
from waiverdesk.commands import ActionCommand


class Command(ActionCommand):
    help = "Verify or export the hash-chained audit trail."

    def add_actions(self, actions) -> None:
        actions.add_parser("verify", help="check the whole chain; name the first bad entry")
        actions.add_parser("checkpoint", help="record the chain's length and head hash")
        export = actions.add_parser("export", help="write every entry as JSON lines")
        export.add_argument("--output", "-o", default="-", help="file to write; '-' for stdout")

    def do_verify(self, **_) -> None:
        result = services.verify()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at entry {result.first_bad_seq}: {result.reason} "
                f"({result.length} entries verify before it)",
                returncode=1,
            )
        self.stdout.write(f"audit chain verifies: {result.length} entries, head {result.head}")

    def do_checkpoint(self, **_) -> None:
        taken = services.checkpoint()
        self.stdout.write(
            f"checkpoint at {taken.seq}: {taken.hash}"
            if taken
            else "no new entries since the last checkpoint"
        )

    def do_export(self, output: str, **_) -> None:
        out = self.stdout if output == "-" else open(output, "w")  # noqa: SIM115
        try:
            for entry in AuditEntry.objects.order_by("seq").iterator(chunk_size=5000):
                out.write(
                    json.dumps({"seq": entry.seq, "hash": entry.hash, "canonical": entry.canonical})
                    + "\n"
                )
        finally:
            if out is not self.stdout:
                out.close()
