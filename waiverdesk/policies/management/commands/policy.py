"""waiverdesk policy check FILE | simulate [FILE] | simulate --replay DRAFT --since DATE |
publish FILE | show"""

from datetime import UTC, datetime

from django.core.management.base import CommandError

from waiverdesk.commands import ActionCommand
from waiverdesk.core.policy import load_policy
from waiverdesk.policies import services
from waiverdesk.waivers.detail import evaluation_dict
from waiverdesk.waivers.services import simulate


class Command(ActionCommand):
    help = "Check, simulate against, publish and show the exception policy."

    def add_actions(self, actions) -> None:
        check = actions.add_parser("check", help="validate a policy document")
        check.add_argument("file")
        sim = actions.add_parser("simulate", help="evaluate a request (JSON) without saving it")
        sim.add_argument("file", nargs="?", default="-", help="request JSON; '-' for stdin")
        sim.add_argument("--replay", metavar="DRAFT", help="replay a draft policy (YAML file) "
                         "over past requests, against what happened to them")  # fmt: skip
        sim.add_argument("--since", help="with --replay: requests submitted from this date")
        sim.add_argument("--all", action="store_true", help="with --replay: list every change")
        publish = actions.add_parser(
            "publish",
            help="propose a policy document as the next version (in a sandbox, or as the first "
            "version, it takes effect at once); --approve VERSION puts a proposal into force",
        )
        publish.add_argument("file", nargs="?")
        publish.add_argument(
            "--approve", type=int, metavar="VERSION", help="approve a proposal (with --as)"
        )
        publish.add_argument("--as", dest="username", help="who publishes or approves it")
        publish.add_argument("--note", default="", help="what changed and why")
        actions.add_parser("show", help="the active version and its exception types")

    def do_check(self, file: str, **_) -> None:
        policy = load_policy(self.read_text(file))
        self.stdout.write(
            f"{file}: valid — {len(policy.types)} exception types, {len(policy.tiers)} tiers, "
            f"{len(policy.expressions)} conditions, sha256 {policy.digest[:12]}"
        )

    def do_simulate(self, file: str, replay: str | None, since: str | None, all: bool, **_):
        if replay:
            return self.replay(replay, since, all)
        result = simulate(self.read_json(file))
        self.print_json(
            {"policy_version": result.policy_version, **evaluation_dict(result.evaluation)}
        )

    def do_publish(
        self, file: str | None, approve: int | None, username: str | None, note: str, **_
    ) -> None:
        by = self.person(username) if username else None
        if approve is not None:
            if by is None:
                raise CommandError("--approve: say who approves, with --as NAME", returncode=2)
            version = services.approve(approve, by)
        elif file:
            version = services.publish(self.read_text(file), by=by, note=note)
        else:
            raise CommandError("publish: name a policy FILE, or --approve VERSION", returncode=2)
        if version.is_active:
            self.stdout.write(f"published v{version.number} ({version.sha256[:12]})")
        else:
            self.stdout.write(
                f"proposed v{version.number} ({version.sha256[:12]}); it takes effect when a "
                f"second policy admin runs: waiverdesk policy publish --approve {version.number} "
                "--as NAME"
            )

    def do_show(self, **_) -> None:
        version = services.active_version()
        policy = services.compiled(version)
        self.stdout.write(
            f"v{version.number} {version.name} (published {version.published_at:%Y-%m-%d})"
        )
        for name, t in policy.types.items():
            self.stdout.write(f"  {name}: {t.label}, at most {t.max_duration_days} days")

    def replay(self, file: str, since: str | None, every: bool) -> None:
        from waiverdesk.insight.replay import replay

        try:
            start = datetime.fromisoformat(since or "").replace(tzinfo=UTC)
        except ValueError:
            raise CommandError("--since: a date, like 2026-01-01", returncode=2) from None
        result = replay(load_policy(self.read_text(file)), start)
        self.stdout.write(f"replayed {file} over {result.requests} requests submitted since "
                          f"{start:%Y-%m-%d}")  # fmt: skip
        self.stdout.write(
            f"  would change: eligibility of {result.counts['eligibility']}, risk level of "
            f"{result.counts['risk']}, route of {result.counts['route']}"
        )
        self.stdout.write("  approver load (steps, before -> after): " + ", ".join(
            f"{tier} {a} -> {b}" for tier, (a, b) in result.load.items()))  # fmt: skip
        before, after = result.cycle_hours
        self.stdout.write(f"  estimated median cycle time: {before} h -> {after} h")
        shown = result.changes if every else result.changes[:50]
        for c in shown:
            was, now = c.before, c.after
            self.stdout.write(
                f"  {c.reference} {c.type} {c.customer}: "
                + "; ".join(
                    {"eligibility": f"eligible {was.eligible} -> {now.eligible}"
                                    + (f" ({'; '.join(now.problems)})" if now.problems else ""),
                     "risk": f"risk {was.level} -> {now.level}",
                     "route": f"route {'+'.join(was.route)} -> {'+'.join(now.route)}"}[what]
                    for what in c.what
                )
            )  # fmt: skip
        if len(result.changes) > len(shown):
            self.stdout.write(f"  … and {len(result.changes) - len(shown)} more (--all)")
