"""waiverdesk policy check FILE | simulate [FILE] | publish FILE | show"""

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
        publish = actions.add_parser("publish", help="make a policy document the active version")
        publish.add_argument("file")
        publish.add_argument("--as", dest="username", help="who publishes it")
        publish.add_argument("--note", default="", help="what changed and why")
        actions.add_parser("show", help="the active version and its exception types")

    def do_check(self, file: str, **_) -> None:
        policy = load_policy(self.read_text(file))
        self.stdout.write(
            f"{file}: valid — {len(policy.types)} exception types, {len(policy.tiers)} tiers, "
            f"{len(policy.expressions)} conditions, sha256 {policy.digest[:12]}"
        )

    def do_simulate(self, file: str, **_) -> None:
        result = simulate(self.read_json(file))
        self.print_json(
            {"policy_version": result.policy_version, **evaluation_dict(result.evaluation)}
        )

    def do_publish(self, file: str, username: str | None, note: str, **_) -> None:
        by = self.person(username) if username else None
        version = services.publish(self.read_text(file), by=by, note=note)
        self.stdout.write(f"published v{version.number} ({version.sha256[:12]})")

    def do_show(self, **_) -> None:
        version = services.active_version()
        policy = services.compiled(version)
        self.stdout.write(
            f"v{version.number} {version.name} (published {version.published_at:%Y-%m-%d})"
        )
        for name, t in policy.types.items():
            self.stdout.write(f"  {name}: {t.label}, at most {t.max_duration_days} days")
