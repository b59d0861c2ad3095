"""waiverdesk rates import FILE [--base CUR] [--as NAME] | list [--currency CUR] [--on DATE]"""

from datetime import date

from django.core.management.base import CommandError

from waiverdesk import clock
from waiverdesk.commands import ActionCommand
from waiverdesk.directory import rates
from waiverdesk.directory.models import ExchangeRate


class Command(ActionCommand):
    help = "Import and list the exchange rates that convert requests to the base currency."

    def add_actions(self, actions) -> None:
        load = actions.add_parser(
            "import",
            help="import rates from a CSV: 'date,currency,rate[,base]' (rate = units of "
            "currency per one unit of base) or an ECB reference-rate file (daily or history)",
        )
        load.add_argument("file", help="the CSV file; '-' for standard input")
        load.add_argument("--base", help="the base of a file without a base column "
                          "(default: the policy's base currency)")  # fmt: skip
        load.add_argument("--as", dest="username", help="who imports them")
        shown = actions.add_parser("list", help="the rates in force on a day")
        shown.add_argument("--currency", help="only this currency")
        shown.add_argument("--on", help="the day (default: today)")

    def do_import(self, file: str, base: str | None, username: str | None, **_) -> None:
        by = self.person(username).username if username else "system"
        base = (base or rates.base_currency()).upper()
        rows = rates.read(self.read_text(file), base)
        counts = rates.store(rows, by, source=file if file != "-" else "stdin")
        self.stdout.write(
            f"{len(rows)} rates read: {counts['added']} added, {counts['changed']} corrected, "
            f"{counts['unchanged']} already known"
        )

    def do_list(self, currency: str | None, on: str | None, **_) -> None:
        try:
            day = date.fromisoformat(on) if on else clock.now().date()
        except ValueError:
            raise CommandError("--on: a date, like 2027-01-04", returncode=2) from None
        found = ExchangeRate.objects.filter(day__lte=day)
        if currency:
            found = found.filter(currency=currency.upper())
        seen = set()
        for rate in found.order_by("base", "currency", "-day"):
            if (rate.base, rate.currency) not in seen:
                seen.add((rate.base, rate.currency))
                self.stdout.write(f"1 {rate.base} = {rate.rate.normalize():f} {rate.currency} "
                                  f"(from {rate.day})")  # fmt: skip
