"""waiverdesk customer add ID NAME [--region R] [--account-owner USER] [--contact-email E] | list"""

from waiverdesk.commands import ActionCommand
from waiverdesk.directory import services
from waiverdesk.directory.models import Customer


class Command(ActionCommand):
    help = "Add and list customers."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="create or update a customer")
        add.add_argument("external_id")
        add.add_argument("name")
        add.add_argument("--region", default="")
        add.add_argument("--account-owner", default="")
        add.add_argument("--contact-email", default="", help="where customer notices go")
        actions.add_parser("list")

    def do_add(self, external_id, name, region, account_owner, contact_email, **_) -> None:
        customer = services.add_customer(
            external_id, name, region, account_owner, contact_email=contact_email
        )
        self.stdout.write(str(customer))

    def do_list(self, **_) -> None:
        for c in Customer.objects.select_related("account_owner"):
            owner = c.account_owner.username if c.account_owner else "-"
            self.stdout.write(f"{c.external_id:12} {c.name:30} {c.region:6} owner {owner}")
