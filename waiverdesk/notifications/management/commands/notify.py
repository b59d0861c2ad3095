"""waiverdesk notify mute NAME EVENT… | unmute NAME EVENT… | show NAME | events"""

from django.contrib.auth.models import User
from django.core.management.base import CommandError

from waiverdesk.commands import ActionCommand
from waiverdesk.notifications import services
from waiverdesk.notifications.events import EVENTS


class Command(ActionCommand):
    help = "Choose which events a person is emailed about."

    def add_actions(self, actions) -> None:
        for name, text in (("mute", "stop emailing NAME about EVENTs"), ("unmute", "email again")):
            action = actions.add_parser(name, help=text)
            action.add_argument("name")
            action.add_argument("events", nargs="+", metavar="EVENT")
        actions.add_parser("show", help="the events NAME has muted").add_argument("name")
        actions.add_parser("events", help="every event, and what it tells")

    def do_mute(self, name: str, events: list[str], **_) -> None:
        self._show(services.set_muted(self._user(name), events, mute=True))

    def do_unmute(self, name: str, events: list[str], **_) -> None:
        self._show(services.set_muted(self._user(name), events, mute=False))

    def do_show(self, name: str, **_) -> None:
        self._show(services.muted(self._user(name)))

    def do_events(self, **_) -> None:
        for event, sentence in EVENTS.items():
            self.stdout.write(f"{event:28} … {sentence}")

    def _user(self, name: str) -> User:
        user = User.objects.filter(username=name).first()
        if user is None:
            raise CommandError(f"no user named '{name}'")
        return user

    def _show(self, muted: list[str]) -> None:
        self.stdout.write("muted: " + (", ".join(muted) or "nothing"))
