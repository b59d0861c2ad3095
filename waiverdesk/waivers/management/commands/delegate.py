"""waiverdesk delegate NAME --to OTHER --from DATE --until DATE [--role ROLE] |
delegate NAME --list | delegate NAME --end ID"""

from django.core.management.base import CommandError

from waiverdesk.commands import ActionCommand
from waiverdesk.waivers.services import delegating


class Command(ActionCommand):
    help = (
        "Hand an approver's decisions to another person while they are away (both days "
        "included; every approver role they hold, or --role), list their delegations, or "
        "call one off."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="the approver who is away")
        parser.add_argument("--to", default=None, help="the person who decides for them")
        parser.add_argument("--from", dest="starts", default=None, metavar="YYYY-MM-DD")
        parser.add_argument("--until", dest="ends", default=None, metavar="YYYY-MM-DD")
        parser.add_argument("--role", default="", help="one approver role (default: every one)")
        parser.add_argument("--as", dest="username", default=None,
                            help="who sets it, if not the approver (an admin)")  # fmt: skip
        parser.add_argument("--list", dest="listing", action="store_true", help="their delegations")
        parser.add_argument("--end", type=int, default=None, metavar="ID",
                            help="call off delegation ID")  # fmt: skip

    def handle(self, *args, **options) -> None:
        self.guarded(self.do, **options)

    def do(self, name, to, starts, ends, role, username, listing, end, **_):
        delegator = self.person(name)
        by = self.person(username) if username else delegator
        if listing:
            for d in delegating.of(delegator):
                state = f"called off {d.ended_at:%Y-%m-%d}" if d.ended_at else ""
                self.stdout.write(f"{d.pk}\t{d.delegator.username} -> {d.delegate.username}\t"
                                  f"{d.role or 'every approver role'}\t{d.starts} to {d.ends}"
                                  f"\t{state}".rstrip())  # fmt: skip
            return
        if end is not None:
            delegating.end(end, by)
            self.stdout.write(f"delegation {end} called off")
            return
        if to is None:
            raise CommandError("say who decides for them: --to NAME (or --list, --end ID)")
        made = delegating.delegate(delegator, to, starts, ends, by, role)
        self.stdout.write(f"delegation {made.pk}: {made.delegate.username} decides for "
                          f"{delegator.username} ({made.role or 'every approver role'}) from "
                          f"{made.starts} to {made.ends}")  # fmt: skip
