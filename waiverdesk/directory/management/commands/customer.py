"""waiverdesk customer add ID NAME [--region R] [--account-owner USER] [--contact-email E] |
update ID [--name N] [--region R] [--account-owner USER] [--contact-email E] | list"""

from waiverdesk.commands import ActionCommand
from waiverdesk.directory import services
from waiverdesk.directory.models import Customer


class Command(ActionCommand):
    help = "Add, change and list customers."

    def add_actions(self, actions) -> None:
        add = actions.add_parser("add", help="create a customer")
        add.add_argument("external_id")
        add.add_argument("name")
        add.add_argument("--region", default="")
        add.add_argument("--account-owner", default="")
        add.add_argument("--contact-email", default="", help="where customer notices go")
        update = actions.add_parser("update", help="change the fields given of a customer")
        update.add_argument("external_id")
        update.add_argument("--name")
        update.add_argument("--region")
        update.add_argument("--account-owner", help="a user name; '' for none")
        update.add_argument("--contact-email")
        update.add_argument("--as", dest="username", help="who changes it")
        actions.add_parser("list")

    def do_add(self, external_id, name, region, account_owner, contact_email, **_) -> None:
        customer = services.add_customer(
            external_id, name, region, account_owner, contact_email=contact_email
        )
        self.stdout.write(str(customer))

    def do_update(self, external_id, username, name, region, account_owner, contact_email, **_):
        given = {"name": name, "region": region, "account_owner": account_owner,
                 "contact_email": contact_email}  # fmt: skip
        changes = {k: v for k, v in given.items() if v is not None}
        by = self.person(username).username if username else "system"
        customer = services.update_customer(external_id, changes, by=by)
        self.stdout.write(str(customer))

    def do_list(self, **_) -> None:
        for c in Customer.objects.select_related("account_owner"):
            owner = c.account_owner.username if c.account_owner else "-"
            self.stdout.write(f"{c.external_id:12} {c.name:30} {c.region:6} owner {owner}")
