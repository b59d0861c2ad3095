"""waiverdesk token create NAME [--scope …] [--expires DATE|DAYSd] | list NAME | revoke PREFIX"""

import re
from datetime import UTC, datetime, time, timedelta

from django.core.management.base import CommandError

from waiverdesk import clock
from waiverdesk.api import services
from waiverdesk.api.models import ApiToken
from waiverdesk.commands import ActionCommand


class Command(ActionCommand):
    help = "Create, list and revoke API tokens."

    def add_actions(self, actions) -> None:
        create = actions.add_parser("create", help="create a token; prints the token alone")
        create.add_argument("name", help="the user the token acts for")
        create.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=services.SCOPES,
            help="repeat for several (default: read, write, decide)",
        )
        create.add_argument(
            "--expires", default="90d", help="a date (YYYY-MM-DD), 'Nd', or 'never'"
        )
        create.add_argument("--label", default="command line")
        listing = actions.add_parser("list", help="a user's tokens (never the tokens themselves)")
        listing.add_argument("name")
        revoke = actions.add_parser("revoke", help="revoke a token by its prefix")
        revoke.add_argument("prefix")

    def do_create(self, name, scopes, expires, label, **_) -> None:
        user = self.person(name)
        _, raw = services.create_token(user, label, scopes, self.expiry(expires))
        self.stdout.write(raw)

    def do_list(self, name, **_) -> None:
        for t in ApiToken.objects.filter(user=self.person(name)):
            state = "revoked" if t.revoked_at else f"expires {t.expires_at or 'never'}"
            self.stdout.write(f"{t.prefix}…  {t.name:20} {','.join(t.scopes):24} {state}")

    def do_revoke(self, prefix, **_) -> None:
        tokens = list(ApiToken.objects.filter(prefix=prefix.rstrip("…"), revoked_at=None))
        if len(tokens) != 1:
            raise CommandError(f"no single live token starts with {prefix}")
        services.revoke(tokens[0], "command line")
        self.stdout.write(f"revoked {tokens[0].prefix}…")

    @staticmethod
    def expiry(text: str):
        if text == "never":
            return None
        if match := re.fullmatch(r"(\d+)d", text):
            return clock.now() + timedelta(days=int(match[1]))
        try:
            return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), UTC)
        except ValueError:
            raise CommandError(f"--expires {text}: use YYYY-MM-DD, Nd or never") from None
