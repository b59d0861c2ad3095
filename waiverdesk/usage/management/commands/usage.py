"""waiverdesk usage import FILE [--format csv|ndjson] [--encoding E] [--date-format F]"""

from waiverdesk import clock
from waiverdesk.commands import ActionCommand
from waiverdesk.usage import services


class Command(ActionCommand):
    help = "Import usage records; bad rows are listed by line, good ones kept."

    def add_actions(self, actions) -> None:
        imp = actions.add_parser("import", help="import a CSV or NDJSON file of usage records")
        self.add_sheet_options(imp)
        by_name = "default: by the name (.ndjson, .jsonl: NDJSON; others: CSV)"
        imp.add_argument("--format", choices=["csv", "ndjson"], help=by_name)

    def do_import(self, file: str, format: str | None, encoding, date_format, **_) -> None:
        kind = format or services.kind_of(file)

        def run(handle, progress):
            return services.import_file(handle, kind, clock.now(), progress, encoding,
                                        date_format)  # fmt: skip

        self.run_import(file, run, "records", "already received")
