"""waiverdesk user add NAME --role ROLE… | password NAME | list"""

import getpass
import sys

from django.contrib.auth.models import User

from waiverdesk.commands import ActionCommand
from waiverdesk.directory import services


class Command(ActionCommand):
    help = "Add users with roles, and list them."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="create a user, or give one more roles")
        add.add_argument("name")
        add.add_argument(
            "--role", action="append", default=[], dest="roles", help="a role (repeat for several)"
        )
        add.add_argument("--email", default="")
        password = actions.add_parser(
            "password", help="set the password for the web UI (read from standard input)"
        )
        password.add_argument("name")
        actions.add_parser("list", help="every user with their roles")

    def do_add(self, name: str, roles: list[str], email: str, **_) -> None:
        user = services.add_user(name, roles, email)
        self.stdout.write(f"{user.username}: {', '.join(sorted(services.roles_of(user))) or '-'}")

    def do_password(self, name: str, **_) -> None:
        if sys.stdin.isatty():
            password = getpass.getpass(f"password for {name}: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        services.set_password(name, password)
        self.stdout.write(f"{name} may now sign in")

    def do_list(self, **_) -> None:
        for user in User.objects.order_by("username").prefetch_related("groups"):
            roles = ", ".join(sorted(g.name for g in user.groups.all()))
            self.stdout.write(f"{user.username:20} {roles}")
