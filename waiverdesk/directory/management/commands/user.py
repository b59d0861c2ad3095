"""waiverdesk user add NAME --role ROLE… | password NAME | roles NAME --add/--remove ROLE… |
deactivate NAME [--reason WHY] | reactivate NAME | list"""

import getpass
import sys

from django.contrib.auth.models import User

from waiverdesk.commands import ActionCommand
from waiverdesk.directory import people, services


class Command(ActionCommand):
    help = "Add users with roles, change their roles, deactivate and reactivate them, list them."

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
        roles = actions.add_parser("roles", help="give a user roles or take them away")
        roles.add_argument("name")
        roles.add_argument("--add", action="append", default=[], metavar="ROLE")
        roles.add_argument("--remove", action="append", default=[], metavar="ROLE")
        deactivate = actions.add_parser(
            "deactivate",
            help="stop a user signing in: their sessions end and their API tokens are revoked",
        )
        deactivate.add_argument("name")
        deactivate.add_argument("--reason", default="")
        reactivate = actions.add_parser("reactivate", help="let a deactivated user sign in again")
        reactivate.add_argument("name")
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

    def do_roles(self, name: str, add: list[str], remove: list[str], **_) -> None:
        user = people.set_roles(name, add, remove)
        self.stdout.write(f"{user.username}: {', '.join(sorted(services.roles_of(user))) or '-'}")

    def do_deactivate(self, name: str, reason: str, **_) -> None:
        left = people.deactivate(name, reason=reason)
        self.stdout.write(f"{name} may no longer sign in; sessions ended, API tokens revoked")
        if left:
            self.stdout.write(f"{name} leaves {len(left)} item(s) to hand over:")
            for work in left:
                self.stdout.write(f"  {work}")

    def do_reactivate(self, name: str, **_) -> None:
        people.reactivate(name)
        self.stdout.write(f"{name} may sign in again (earlier API tokens stay revoked)")

    def do_list(self, **_) -> None:
        for user in User.objects.order_by("username").prefetch_related("groups"):
            self.stdout.write(people.describe(user))
