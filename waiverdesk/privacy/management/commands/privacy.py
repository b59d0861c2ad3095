"""waiverdesk privacy erase PERSON [--why WHY] [--yes] | hold customer|person|waiver TARGET
--reason WHY --owner USER | release ID | holds | due [--days N] | retention [--dry-run]"""

import sys

from django.core.management.base import CommandError

from waiverdesk import clock
from waiverdesk.commands import ActionCommand
from waiverdesk.privacy import services
from waiverdesk.privacy.models import LegalHold

KINDS = ("customer", "person", "waiver")


class Command(ActionCommand):
    help = "Erase a person's personal data, place and release legal holds, see what is due."

    def add_actions(self, actions) -> None:
        erase = actions.add_parser(
            "erase", help="erase a person (user name or address) or a contact (address)"
        )
        erase.add_argument("person")
        erase.add_argument("--why", default="on request",
                           help="the request or ground, without names")  # fmt: skip
        erase.add_argument("--yes", action="store_true", help="do not ask for a confirmation")
        erase.add_argument("--as", dest="username", help="the admin who erases")
        hold = actions.add_parser("hold", help="keep a customer's, person's or request's records")
        hold.add_argument("on", nargs="?", choices=KINDS, help="what is held (or use --KIND)")
        hold.add_argument("target", nargs="?", help="its id, user name or reference")
        for kind, what in (("customer", "ID"), ("person", "NAME"), ("waiver", "REFERENCE")):
            hold.add_argument(f"--{kind}", metavar=what)
        hold.add_argument("--reason", required=True)
        hold.add_argument("--owner", required=True, help="who answers for the hold")
        hold.add_argument("--as", dest="username")
        release = actions.add_parser("release", help="end a legal hold")
        release.add_argument("hold", type=int)
        release.add_argument("--as", dest="username")
        actions.add_parser("holds", help="the legal holds in force")
        due = actions.add_parser("due", help="what the retention erases in the coming days")
        due.add_argument("--days", type=int, default=90)
        run = actions.add_parser("retention", help="erase what is due today (the worker does)")
        run.add_argument("--dry-run", action="store_true")

    def _by(self, username: str | None):
        return self.person(username) if username else "system"

    def do_erase(self, person: str, why: str, yes: bool, username: str | None, **_) -> None:
        by = self._by(username)
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("erasing cannot be undone: add --yes to erase without asking")
            answer = input(f"Erase {person}'s personal data? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("nothing erased")
        pseudonym = services.erase(person, by, why)
        self.stdout.write(f"erased {person}: the trail and the records now say {pseudonym}")

    def do_hold(self, on, target, reason: str, owner: str, username: str | None, **options):
        said = [(k, options[k]) for k in KINDS if options.get(k)]
        if on and target:
            said.append((on, target))
        if len(said) != 1:
            raise CommandError("say what is held: customer ID, person NAME or waiver REFERENCE")
        made = services.hold(*said[0], reason, owner, self._by(username))
        self.stdout.write(f"legal hold #{made.pk} on {made.on}, owned by {made.owner.username}")

    def do_release(self, hold: int, username: str | None, **_) -> None:
        ended = services.release(hold, self._by(username))
        self.stdout.write(f"legal hold #{ended.pk} on {ended.on} released")

    def do_holds(self, **_) -> None:
        found = LegalHold.objects.filter(released_at=None).select_related(
            "customer", "person", "waiver", "owner"
        )
        for h in found.order_by("pk"):
            self.stdout.write(f"#{h.pk:<5} {h.on:<32} {h.owner.username:<12} "
                              f"since {h.placed_at:%Y-%m-%d}  {h.reason}")  # fmt: skip
        self.stdout.write(f"{len(found)} legal holds in force")

    def do_due(self, days: int, **_) -> None:
        found = services.due(clock.now().date(), days)
        for d in found:
            kept = f"  KEPT by {services.held_text(d.held)}" if d.held else ""
            kept += f"  WAITS: {d.blocked}" if d.blocked else ""
            self.stdout.write(f"{d.on:%Y-%m-%d}  {d.kind:<8} {d.target}{kept}")
        self.stdout.write(f"{len(found)} due in the next {days} days")

    def do_retention(self, dry_run: bool, **_) -> None:
        for target, what in services.apply_retention(clock.now(), dry_run):
            self.stdout.write(f"{target}: {what}")
