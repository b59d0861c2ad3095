"""waiverdesk product add CODE NAME --family F [--risk-class low|medium|high] | list"""

from waiverdesk.commands import ActionCommand
from waiverdesk.directory import services
from waiverdesk.directory.models import Product


class Command(ActionCommand):
    help = "Add and list products."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="create or update a product")
        add.add_argument("code")
        add.add_argument("name")
        add.add_argument("--family", required=True)
        add.add_argument("--risk-class", default="low", choices=["low", "medium", "high"])
        actions.add_parser("list")

    def do_add(self, code, name, family, risk_class, **_) -> None:
        self.stdout.write(str(services.add_product(code, name, family, risk_class)))

    def do_list(self, **_) -> None:
        for p in Product.objects.all():
            self.stdout.write(f"{p.code:12} {p.name:30} {p.family:16} {p.risk_class}")
