"""waiverdesk billing import FILE | discrepancies [--customer ID]  (CSV out)"""

import sys
from pathlib import Path

from django.core.management.base import CommandError

from waiverdesk import clock
from waiverdesk.billing import services
from waiverdesk.commands import ActionCommand


class Command(ActionCommand):
    help = "Import invoice lines and list where billing differs from what exceptions allow."

    def add_actions(self, actions) -> None:
        imp = actions.add_parser("import", help="invoice lines from CSV (with a header)")
        imp.add_argument("file")
        found = actions.add_parser("discrepancies", help="as CSV on standard output")
        found.add_argument("--customer")

    def do_import(self, file: str, **_) -> None:
        try:
            with Path(file).open(newline="") if file != "-" else sys.stdin as handle:
                kept, known, problems = services.import_lines(handle, clock.now())
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        for problem in problems:
            self.stdout.write(problem)
        self.stdout.write(f"{kept} lines kept, {known} already imported, {len(problems)} rejected")

    def do_discrepancies(self, customer, **_) -> None:
        self.stdout.write(services.to_csv(services.discrepancies(customer)), ending="")
