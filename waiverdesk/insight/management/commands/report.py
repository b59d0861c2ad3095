"""waiverdesk report --period 2027-Q1 [-o report.pdf] [--csv pack.zip]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from waiverdesk.core.errors import Invalid
from waiverdesk.insight import report
from waiverdesk.insight.metrics import Period


class Command(BaseCommand):
    help = "Write the leadership report of a period as a PDF, and its figures as CSV files."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", required=True, help="2027, 2027-Q1 or 2027-03")
        parser.add_argument("--output", "-o", help="the PDF to write (report-PERIOD.pdf)")
        parser.add_argument("--csv", help="also write the figures as a zip of CSV files")

    def handle(self, *args, period: str, output: str | None, csv: str | None, **_) -> None:
        try:
            chosen = Period.parse(period)
        except Invalid as exc:
            raise CommandError(f"--period: {exc.problems[0].message}", returncode=2) from None
        path = Path(output or f"report-{chosen.label}.pdf")
        built = report.build(chosen)
        path.write_bytes(report.pdf(built))
        self.stdout.write(f"report of {chosen.label} written to {path}")
        if csv:
            Path(csv).write_bytes(report.csv_pack(built))
            self.stdout.write(f"its figures written to {csv}")
