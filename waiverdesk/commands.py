"""What every `waiverdesk` command shares: sub-actions, the acting user, clear errors."""

from __future__ import annotations

import contextlib
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
    """A command with sub-actions (`waiverdesk policy check FILE`): `do_<action>` methods.

    Django's system checks are not run before each of them (they load every page's view and
    take over a second, which scripts calling `token create` or `usage import` pay each
    time); `waiverdesk check`, `migrate` and `serve` run them."""

    requires_system_checks: list[str] = []

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

    @staticmethod
    def add_sheet_options(parser) -> None:
        """The options of an import of spreadsheet exports (see waiverdesk.sheets)."""
        from waiverdesk.sheets import NUMBER_RULE

        parser.add_argument("file", help="the file, or - for standard input")
        parser.add_argument("--encoding", help="the file's text encoding (default: told from "
                            "its bytes: UTF-8, UTF-16, Windows-1252, Latin-1…)")  # fmt: skip
        parser.add_argument("--date-format", help="how its dates are written, in strftime's "
                            "codes: %%d/%%m/%%Y, %%m/%%d/%%Y (default: YYYY-MM-DD)")  # fmt: skip
        parser.epilog = (f"The delimiter (comma, semicolon or tab) is told from the header; "
                         f"columns are named in any case and spacing; blank rows are "
                         f"skipped. {NUMBER_RULE.replace('%', '%%')}")  # fmt: skip

    def run_import(self, file: str, run, noun: str, again: str) -> None:
        """Import `file` (or standard input) with `run(handle, progress)`, a progress line on
        standard error; each bad line and the totals on standard output. Exits non-zero when
        no line was kept and not every line was there already."""
        with contextlib.ExitStack() as stack:
            size = 0
            if file == "-":
                handle = sys.stdin.buffer
            else:
                try:
                    handle = stack.enter_context(Path(file).open("rb"))
                    size = Path(file).stat().st_size
                except OSError as exc:
                    raise CommandError(f"cannot read {file}: {exc.strerror}") from None

            def shown(lines: int) -> None:
                share = f" ({min(100, 100 * handle.tell() // size)}%)" if size else ""
                sys.stderr.write(f"\r{lines:,} lines read{share}")

            report = run(handle, shown)
        sys.stderr.write("\n")
        for bad in report.rejected:
            problems = "; ".join(f"{e['field']}: {e['message']}" for e in bad["errors"])
            self.stdout.write(f"line {bad['position']}: {problems}")
        totals = (f"{report.accepted} {noun} kept, {report.duplicates} {again}, "
                  f"{len(report.rejected)} rejected")  # fmt: skip
        if not report.accepted and (report.rejected or not report.duplicates):
            raise CommandError(f"{totals}: nothing was imported")
        self.stdout.write(totals)

    def print_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))
