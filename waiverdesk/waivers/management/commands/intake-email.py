"""waiverdesk intake-email [--maildir DIR]: requests by email (see waivers/email_intake.py)"""

import logging
import mailbox
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from waiverdesk import clock
from waiverdesk.waivers import email_intake

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Turn an email (standard input, or each new message of a maildir) into a draft "
        "request and queue the answer to its sender. A message that does not become a "
        "draft is moved to the maildir's .Quarantine folder, its reason in a header."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--maildir", help="read the new messages of this maildir")

    def handle(self, *args, maildir: str | None, **options) -> None:
        if maildir is None:
            raw = sys.stdin.buffer.read(settings.EMAIL_MAX_BYTES + 1)
            if len(raw) > settings.EMAIL_MAX_BYTES:
                size = len(raw) + sum(
                    len(chunk) for chunk in iter(lambda: sys.stdin.buffer.read(2**20), b"")
                )
                self.report(email_intake.too_large(raw[:65536], size, clock.now()))
            else:
                self.report(email_intake.receive(raw, clock.now()))
            return
        box = mailbox.Maildir(maildir, create=False)
        quarantine = box.add_folder("Quarantine")  # Maildir++: the folder .Quarantine
        for key in list(box.iterkeys()):
            try:
                self.take(box, key, quarantine)
            except (KeyError, FileNotFoundError):
                continue  # another intake took it first
            except Exception:  # filing one message failed: the next is still read
                log.exception("the message %s could not be filed", key)

    def take(self, box: mailbox.Maildir, key: str, quarantine: mailbox.Maildir) -> None:
        """Handle one new message: read it, and file it as read or in the quarantine."""
        path = Path(box._path) / box._lookup(key)  # noqa: SLF001 — where the message's file is
        if "S" in path.name.partition(":2,")[2]:
            return  # already read
        size = path.stat().st_size
        if size > settings.EMAIL_MAX_BYTES:  # refused unread, and moved as it is
            with path.open("rb") as file:
                self.report(email_intake.too_large(file.read(65536), size, clock.now()))
            path.rename(Path(quarantine._path) / "new" / path.name)  # noqa: SLF001
            return
        message = box.get_message(key)
        answer = email_intake.receive(box.get_bytes(key), clock.now())
        self.report(answer)
        if answer.quarantined:
            message["X-Waiverdesk-Quarantined"] = " ".join(answer.quarantined.split())[:900]
            quarantine.add(message)
            box.discard(key)
            return
        message.add_flag("S")
        message.set_subdir("cur")
        box[key] = message

    def report(self, answer: email_intake.Answer) -> None:
        line = answer.body.splitlines()[0] if answer.body else answer.quarantined
        self.stdout.write(f"to {answer.to or '(not answered)'}: {line}")
