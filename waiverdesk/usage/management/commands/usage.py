"""waiverdesk usage import FILE (CSV with a header, or NDJSON; '-' for standard input)"""

import contextlib
import sys
from pathlib import Path

from django.core.management.base import CommandError

from waiverdesk import clock
from waiverdesk.commands import ActionCommand
from waiverdesk.usage import services


class Command(ActionCommand):
    help = "Import usage records; bad rows are listed by line, good ones kept."

    def add_actions(self, actions) -> None:
        imp = actions.add_parser("import", help="import a CSV or NDJSON file of usage records")
        imp.add_argument("file")
        imp.add_argument("--format", choices=["csv", "ndjson"], help="default: by the name")

    def do_import(self, file: str, format: str | None, **_) -> None:
        kind = format or services.kind_of(file)
        with contextlib.ExitStack() as stack:
            if file == "-":
                handle, size = sys.stdin.buffer, 0
            else:
                try:
                    handle = stack.enter_context(Path(file).open("rb"))
                except OSError as exc:
                    raise CommandError(f"cannot read {file}: {exc.strerror}") from None
                size = Path(file).stat().st_size

            def shown(lines: int) -> None:
                share = f" ({min(100, 100 * handle.tell() // size)}%)" if size else ""
                sys.stderr.write(f"\r{lines:,} lines read{share}")

            report = services.import_file(handle, kind, clock.now(), shown)
        sys.stderr.write("\n")
        for bad in report.rejected:
            problems = "; ".join(f"{e['field']}: {e['message']}" for e in bad["errors"])
            self.stdout.write(f"line {bad['position']}: {problems}")
        self.stdout.write(
            f"{report.accepted} records kept, {report.duplicates} already received, "
            f"{len(report.rejected)} rejected"
        )
