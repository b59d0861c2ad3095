"""What every `waiverdesk` command shares: sub-actions, the acting user, clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.core.evaluation import EvaluationError
from waiverdesk.core.policy import PolicyError
from waiverdesk.policies.services import NoActivePolicy
from waiverdesk.waivers.services import NotFound


class ActionCommand(BaseCommand):
    """A command with sub-actions (`waiverdesk policy check FILE`): `do_<action>` methods."""

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        self.add_actions(actions)

    def add_actions(self, actions) -> None:
        raise NotImplementedError

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        self.guarded(getattr(self, f"do_{action.replace('-', '_')}"), **options)

    def guarded(self, do, **options: Any) -> None:
        """Run `do`, its refusals said as the command line says them (and its exit code)."""
        try:
            do(**options)
        except Invalid as exc:
            raise CommandError(
                "refused:\n"
                + "\n".join(f"  {p.field}: {p.message} [{p.code}]" for p in exc.problems),
                returncode=2,
            ) from None
        except Denied as exc:
            raise CommandError(f"denied [{exc.code}]: {exc.message}", returncode=3) from None
        except (PolicyError, EvaluationError) as exc:
            raise CommandError(f"policy error:\n{exc}", returncode=2) from None
        except NoActivePolicy as exc:
            raise CommandError(str(exc)) from None
        except NotFound as exc:
            raise CommandError(f"not found: {exc}") from None

    def person(self, username: str | None) -> User:
        """The active user named by `--as`."""
        if not username:
            raise CommandError("say who acts, with --as USERNAME")
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named '{username}'")
        return user

    def read_text(self, path: str) -> str:
        """The text of a file, or of standard input for '-'."""
        if path == "-":
            return sys.stdin.read()
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"cannot read {path}: it is not UTF-8 text") from None

    def read_json(self, path: str) -> Any:
        try:
            return json.loads(self.read_text(path))
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None

    def print_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))
