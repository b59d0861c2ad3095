"""waiverdesk audit verify | checkpoint | export | prove REF | consistency OLD_SIZE | key |
verifier"""

import getpass
import json
from contextlib import nullcontext
from pathlib import Path

from django.core.management.base import CommandError

from waiverdesk.audit import services
from waiverdesk.commands import ActionCommand
from waiverdesk.core import verifier


class Command(ActionCommand):
    help = "Verify, checkpoint, export and prove the hash-chained audit trail."

    def add_actions(self, actions) -> None:
        actions.add_parser("verify", help="check the whole chain; name the first bad entry")
        actions.add_parser("checkpoint", help="record a signed Merkle checkpoint of the chain")
        export = actions.add_parser(
            "export", help="write every entry and signed checkpoint as JSON lines"
        )
        prove = actions.add_parser("prove", help="inclusion proofs of one waiver's entries")
        prove.add_argument("reference")
        consistent = actions.add_parser(
            "consistency",
            help="prove that the latest signed checkpoint extends the one of OLD_SIZE entries",
        )
        consistent.add_argument("old_size", type=int, metavar="OLD_SIZE")
        for parser in (export, prove, consistent):
            parser.add_argument("--output", "-o", default="-", help="file to write; '-': stdout")
            parser.add_argument("--as", dest="username", help="who reads (recorded in the trail)")
        actions.add_parser("key", help="print the public key that signs checkpoints (hex)")
        actions.add_parser("verifier", help="print the standalone verifier to give an auditor")

    def do_verify(self, **_) -> None:
        result = services.verify()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at entry {result.first_bad_seq}: {result.reason} "
                f"({result.length} entries verify before it)",
                returncode=1,
            )
        self.stdout.write(f"audit chain verifies: {result.length} entries, head {result.head}")

    def do_checkpoint(self, **_) -> None:
        taken = services.checkpoint()
        self.stdout.write(
            f"checkpoint at {taken.seq}: root {taken.root}, signed by {taken.public_key}"
            if taken
            else "no new entries since the last checkpoint"
        )

    def do_export(self, output: str, username: str | None, **_) -> None:
        services.record_read(self.reader(username), "export", {"output": output})
        services.checkpoint()  # the export ends with a signed checkpoint over all of it
        with self.opened(output) as out:
            n = services.export(out)
        if output != "-":
            self.stderr.write(f"{n} entries written to {output}")

    def do_prove(self, reference: str, output: str, username: str | None, **_) -> None:
        proof = services.prove(reference)
        services.record_read(self.reader(username), "proof", {"reference": reference})
        with self.opened(output) as out:
            out.write(json.dumps(proof, indent=1) + "\n")

    def do_consistency(self, old_size: int, output: str, username: str | None, **_) -> None:
        proof = services.consistency(old_size)
        services.record_read(self.reader(username), "consistency", {"from": old_size})
        with self.opened(output) as out:
            out.write(json.dumps(proof, indent=1) + "\n")
        if output != "-":
            self.stderr.write(
                f"the tree of {proof['new']['size']} entries extends the tree of "
                f"{old_size}: proof written to {output}"
            )

    def do_key(self, **_) -> None:
        self.stdout.write(services.public_key_hex(services.signing_key()))

    def do_verifier(self, **_) -> None:
        self.stdout.write(Path(verifier.__file__).read_text(), ending="")

    def reader(self, username: str | None) -> str:
        return self.person(username).username if username else f"cli:{getpass.getuser()}"

    def opened(self, output: str):
        if output == "-":
            return nullcontext(self.stdout)
        return open(output, "w", encoding="utf-8")  # noqa: SIM115
