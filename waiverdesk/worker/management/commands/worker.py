"""waiverdesk worker [--once] [--dry-run] [--interval SECONDS]"""

import signal
import time

from django.core.management.base import BaseCommand

from waiverdesk import clock
from waiverdesk.worker import jobs


class Command(BaseCommand):
    help = (
        "Run the periodic jobs (activation, sunset, reminders, conditions, message delivery) "
        "in a loop; several workers may run at once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run every job once and stop")
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be done, change nothing"
        )
        parser.add_argument("--interval", type=float, default=30, help="seconds between ticks")

    def handle(self, *args, once: bool, dry_run: bool, interval: float, **options) -> None:
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        while True:
            for line in jobs.tick(clock.now(), dry_run=dry_run):
                self.stdout.write(line)
            if once or dry_run or stopping:
                return
            for _ in range(int(interval * 10)):
                if stopping:
                    return
                time.sleep(0.1)
