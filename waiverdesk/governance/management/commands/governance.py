"""waiverdesk governance patterns | reviews [--open] | attest ID --outcome O --rationale R --as U"""

from waiverdesk import clock
from waiverdesk.commands import ActionCommand
from waiverdesk.governance import patterns, reviews
from waiverdesk.governance.models import Review


class Command(ActionCommand):
    help = "Pattern findings and governance reviews."

    def add_actions(self, actions) -> None:
        actions.add_parser("patterns", help="what the policy's pattern thresholds find")
        listing = actions.add_parser("reviews", help="reviews, oldest due first")
        listing.add_argument("--open", action="store_true", help="only those without an outcome")
        attest = actions.add_parser("attest", help="record a control owner's review outcome")
        attest.add_argument("review", type=int)
        attest.add_argument("--outcome", required=True, choices=reviews.DECIDED_BY_OWNER)
        attest.add_argument("--rationale", required=True)
        attest.add_argument("--as", dest="username")

    def do_patterns(self, **_) -> None:
        found = patterns.findings(clock.now())
        for f in found:
            self.stdout.write(f"[{f.kind}] {f.title}\n  {f.detail}\n  {', '.join(f.references)}")
        self.stdout.write(f"{len(found)} findings")

    def do_reviews(self, open: bool, **_) -> None:
        rows = Review.objects.select_related("waiver", "owner").order_by("due_at", "pk")
        for r in rows.filter(outcome="") if open else rows:
            late = " OVERDUE" if not r.outcome and r.due_at <= clock.now() else ""
            self.stdout.write(
                f"{r.pk:>6}  campaign {r.campaign_id:<4} {r.waiver.reference:<16} "
                f"{r.owner.username:<12} due {r.due_at:%Y-%m-%d}{late}  {r.outcome or 'open'}"
            )

    def do_attest(self, review: int, outcome: str, rationale: str, username: str, **_) -> None:
        done = reviews.attest(review, self.person(username), outcome, rationale)
        self.stdout.write(f"{done.waiver.reference}: {done.get_outcome_display()}")
