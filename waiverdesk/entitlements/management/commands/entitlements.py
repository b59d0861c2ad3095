"""waiverdesk entitlements export [--customer ID] [--since N] | effective [--customer ID]"""

import json

from waiverdesk.commands import ActionCommand
from waiverdesk.entitlements import services


class Command(ActionCommand):
    help = "Export entitlement grants and reverts (CSV), or show the delta in force."

    def add_actions(self, actions) -> None:
        export = actions.add_parser("export", help="grants and reverts as CSV, in order")
        export.add_argument("--customer")
        export.add_argument("--since", type=int, default=0, help="after this change id")
        effective = actions.add_parser("effective", help="the delta in force, as JSON")
        effective.add_argument("--customer")
        effective.add_argument("--product")

    def do_export(self, customer, since, **_) -> None:
        self.stdout.write(services.to_csv(services.changes(customer, since)), ending="")

    def do_effective(self, customer, product, **_) -> None:
        self.stdout.write(json.dumps(services.effective(customer, product), indent=2))
