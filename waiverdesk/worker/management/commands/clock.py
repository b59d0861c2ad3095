"""waiverdesk clock show | set DATE | advance DAYS (a sandbox workspace only)"""

from datetime import date

from django.core.management.base import CommandError

from waiverdesk import clock as real_clock
from waiverdesk.commands import ActionCommand
from waiverdesk.worker import clock


class Command(ActionCommand):
    help = "Show the workspace's clock, or move a sandbox's clock."

    def add_actions(self, actions) -> None:
        actions.add_parser("show", help="the time the workspace works with")
        set_ = actions.add_parser("set", help="make today DATE (YYYY-MM-DD)")
        set_.add_argument("day", metavar="DATE")
        advance = actions.add_parser("advance", help="move the clock DAYS days forward")
        advance.add_argument("days", type=int)

    def do_show(self, **_) -> None:
        self.stdout.write(real_clock.now().isoformat(timespec="seconds"))

    def do_set(self, day: str, **_) -> None:
        try:
            clock.set_to(date.fromisoformat(day))
        except ValueError:
            raise CommandError(f"'{day}' is not a date: write YYYY-MM-DD") from None
        self.do_show()

    def do_advance(self, days: int, **_) -> None:
        clock.advance(days)
        self.do_show()
