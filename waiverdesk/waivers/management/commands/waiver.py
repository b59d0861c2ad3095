"""waiverdesk waiver create|edit|submit|approve|reject|request-changes|withdraw|terminate|
renew|amend|attach|override-risk|show|list|sweep — a request through its whole life."""

import mimetypes
from pathlib import Path

from django.core.management.base import CommandError

from waiverdesk.commands import ActionCommand
from waiverdesk.waivers import services
from waiverdesk.waivers.detail import detail
from waiverdesk.waivers.models import Waiver


class Command(ActionCommand):
    help = "Take exception requests through their life from the command line."

    def add_actions(self, actions) -> None:
        def action(name, help, ref=True, actor=True, body=False):
            parser = actions.add_parser(name, help=help)
            if ref:
                parser.add_argument("reference")
            if body:
                parser.add_argument("file", help="request JSON; '-' for stdin")
            if actor:
                parser.add_argument("--as", dest="username", required=True, help="who acts")
            return parser

        action(
            "create",
            'create a draft from a request body ("submit": true submits it)',
            ref=False,
            body=True,
        )
        action("edit", "change fields of a request (JSON with the fields to change)", body=True)
        action("submit", "submit a draft for approval")
        for name in ("approve", "reject", "request-changes"):
            p = action(name, f"{name.replace('-', ' ')} on the step you may act on")
            p.add_argument("--comment", default="")
            p.add_argument("--tier", default=None, help="the step, when several are open at once")
            p.add_argument(
                "--check",
                action="append",
                default=[],
                dest="checks",
                help="a contract/regulatory check you record as passed",
            )
            p.add_argument(
                "--condition",
                action="append",
                default=[],
                dest="conditions",
                metavar="TEXT;OWNER;DUE[;customer]",
                help="an obligation attached to approval (;customer: told in the customer notice)",
            )
        action("withdraw", "withdraw an undecided request").add_argument("--reason", default="")
        action("terminate", "end an exception early").add_argument("--reason", required=True)
        action("renew", "request a renewal with fresh justification", body=True)
        action("amend", "request an amendment of scope or dates", body=True)
        p = action("attach", "attach a file of evidence")
        p.add_argument("path")
        p.add_argument("--kind", required=True, help="the evidence it provides")
        p.add_argument("--content-type", default="")
        p = action("override-risk", "override one risk score, with a rationale")
        p.add_argument("dimension")
        p.add_argument("score", type=int)
        p.add_argument("--rationale", required=True)
        p = action("task-done", "mark an implementation task done (by its name)")
        p.add_argument("task", help="e.g. update_billing")
        p.add_argument("--note", default="")
        action("show", "a waiver's detail as JSON", actor=False)
        p = action("list", "waivers, newest first", ref=False, actor=False)
        p.add_argument("--status", default="")
        p = action(
            "sweep", "activate and expire waivers as their dates pass", ref=False, actor=False
        )
        p.add_argument("--dry-run", action="store_true")

    def do_create(self, file, username, **_):
        waiver = services.create(self.read_json(file), self.person(username))
        self.stdout.write(waiver.reference)

    def do_edit(self, reference, file, username, **_):
        waiver = self.run(services.edit, reference, username, self.read_json(file))
        self.stdout.write(f"{waiver.reference} {waiver.status}")

    def do_submit(self, reference, username, **_):
        waiver = self.run(services.submit, reference, username)
        self.stdout.write(f"{waiver.reference} {waiver.status}")

    def _decide(self, decision, reference, username, comment, checks, conditions, tier, **_):
        parsed = []
        for text in conditions:
            parts = text.split(";")
            if len(parts) not in (3, 4) or parts[3:] not in ([], ["customer"]):
                raise CommandError(f"--condition '{text}': write TEXT;OWNER;YYYY-MM-DD[;customer]")
            parsed.append({**dict(zip(("text", "owner", "due"), parts[:3], strict=True)),
                           "customer_visible": parts[3:] == ["customer"]})  # fmt: skip
        self.run(services.decide, reference, username, decision, comment, parsed, checks,
                 tier=tier)  # fmt: skip
        self.stdout.write(f"{reference} {services.get(reference).status}")

    def do_approve(self, **options):
        self._decide("approve", **options)

    def do_reject(self, **options):
        self._decide("reject", **options)

    def do_request_changes(self, **options):
        self._decide("request_changes", **options)

    def do_withdraw(self, reference, username, reason, **_):
        self.stdout.write(f"{self.run(services.withdraw, reference, username, reason).status}")

    def do_terminate(self, reference, username, reason, **_):
        self.stdout.write(f"{self.run(services.terminate, reference, username, reason).status}")

    def do_renew(self, reference, file, username, **_):
        self.stdout.write(
            self.run(services.renew, reference, username, self.read_json(file)).reference
        )

    def do_amend(self, reference, file, username, **_):
        self.stdout.write(
            self.run(services.amend, reference, username, self.read_json(file)).reference
        )

    def do_attach(self, reference, username, path, kind, content_type, **_):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no file {path}")
        content_type = content_type or mimetypes.guess_type(file.name)[0] or ""
        with file.open("rb") as content:  # read in chunks, not whole
            attachment = self.run(
                services.attach, reference, username, file.name, content, content_type, kind
            )
        self.stdout.write(f"{attachment.filename} {attachment.sha256}")

    def do_override_risk(self, reference, username, dimension, score, rationale, **_):
        waiver = self.run(services.override_risk, reference, username, dimension, score, rationale)
        self.stdout.write(f"{waiver.reference} {waiver.status} risk {waiver.risk['overall']}")

    def do_task_done(self, reference, username, task, note, **_):
        waiver = self.run(lambda ref: services.get(ref), reference)
        found = waiver.tasks.filter(name=task).first()
        if found is None:
            names = ", ".join(waiver.tasks.values_list("name", flat=True)) or "none"
            raise CommandError(f"{reference} has no task '{task}' (its tasks: {names})")
        done = services.complete_task(found.pk, self.person(username), note)
        self.stdout.write(f"{reference}: {done.title} done")

    def do_show(self, reference, **_):
        self.print_json(detail(self.run(lambda ref: services.get(ref), reference)))

    def do_list(self, status, **_):
        waivers = Waiver.objects.select_related("customer", "requester")
        if status:
            waivers = waivers.filter(status=status)
        for w in waivers.iterator(chunk_size=1000):  # every one: no silent cap
            self.stdout.write(
                f"{w.reference}  {w.status:18} {w.type:18} {w.customer.external_id:10} "
                f"{w.start} → {w.end}  {w.requester.username}"
            )

    def do_sweep(self, dry_run, **_):
        for reference, action in services.sweep(dry_run=dry_run):
            self.stdout.write(f"{reference} {action}{' (dry run)' if dry_run else ''}")

    def run(self, service, reference, username=None, *args, **kwargs):
        """Call a service for one waiver, turning an unknown reference into a clear error."""
        try:
            if username is None:
                return service(reference, *args, **kwargs)
            return service(reference, self.person(username), *args, **kwargs)
        except services.NotFound:
            raise CommandError(f"no waiver {reference}") from None
