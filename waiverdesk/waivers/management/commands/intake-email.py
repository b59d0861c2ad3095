"""waiverdesk intake-email [--maildir DIR]: requests by email (see waivers/email_intake.py)"""

import mailbox
import sys

from django.core.management.base import BaseCommand

from waiverdesk import clock
from waiverdesk.waivers import email_intake


class Command(BaseCommand):
    help = (
        "Turn an email (standard input, or each new message of a maildir) into a draft "
        "request and queue the answer to its sender."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--maildir", help="read the new messages of this maildir")

    def handle(self, *args, maildir: str | None, **options) -> None:
        if maildir is None:
            self.report(email_intake.receive(sys.stdin.buffer.read(), clock.now()))
            return
        box = mailbox.Maildir(maildir, create=False)
        for key in list(box.iterkeys()):
            message = box.get_message(key)
            if "S" in message.get_flags():
                continue  # already read
            self.report(email_intake.receive(message.as_bytes(), clock.now()))
            message.add_flag("S")
            message.set_subdir("cur")
            box[key] = message

    def report(self, answer: email_intake.Answer) -> None:
        self.stdout.write(f"to {answer.to or '(unknown sender)'}: {answer.body.splitlines()[0]}")
