"""waiverdesk billing import FILE [--encoding E] [--date-format F]
waiverdesk billing discrepancies [--customer ID]  (CSV out)"""

from waiverdesk import clock
from waiverdesk.billing import services
from waiverdesk.commands import ActionCommand


class Command(ActionCommand):
    help = "Import invoice lines and list where billing differs from what exceptions allow."

    def add_actions(self, actions) -> None:
        imp = actions.add_parser("import", help="invoice lines from a CSV export (with a header: "
                                 + ", ".join(services.FIELDS) + ")")  # fmt: skip
        self.add_sheet_options(imp)
        found = actions.add_parser("discrepancies", help="as CSV on standard output")
        found.add_argument("--customer")

    def do_import(self, file: str, encoding, date_format, **_) -> None:
        def run(handle, progress):
            return services.import_lines(handle, clock.now(), progress, encoding, date_format)

        self.run_import(file, run, "lines", "already imported")

    def do_discrepancies(self, customer, **_) -> None:
        self.stdout.write(services.to_csv(services.discrepancies(customer)), ending="")
