"""Governance reviews (G2): on the policy's cadence the worker opens a campaign and asks
each control owner to re-attest the active exceptions they own: still needed, to be
amended, or to end early, with a rationale. Overdue reviews are flagged to the owner and
then escalated to compliance (the auditors); a campaign closes when every review has its
outcome. Every change is one transaction with its audit entries and messages."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from waiverdesk import clock
from waiverdesk.audit import services as audit
from waiverdesk.core.errors import Denied, Invalid, Problem
from waiverdesk.core.lifecycle import Status
from waiverdesk.core.policy import LEVELS
from waiverdesk.directory.services import roles_of
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies
from waiverdesk.waivers import services as waivers
from waiverdesk.waivers.models import Waiver

from .models import Campaign, Review

DECIDED_BY_OWNER = (Review.Outcome.STILL_NEEDED, Review.Outcome.AMEND, Review.Outcome.TERMINATE)
COMPLIANCE = "auditor"


def run(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """The worker's review job: open due campaigns, flag and escalate overdue reviews, close
    the reviews of exceptions that ended, and close finished campaigns."""
    done = open_due_campaigns(now, dry_run)
    done += check_overdue(now, dry_run)
    if not dry_run:
        done += close_finished(now)
    return done


def open_due_campaigns(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """A campaign per cadence whose last one opened at least that long ago, if any
    exception is due for it."""
    version = policies.active_version()
    rules = policies.compiled(version).document.reviews
    done = []
    for every in sorted({rules.cadence(level) for level in LEVELS}):
        last = Campaign.objects.filter(every_days=every).order_by("-opened_at").first()
        if last and last.opened_at + timedelta(days=every) > now:
            continue
        levels = [level for level in LEVELS if rules.cadence(level) == every]
        due = list(
            waivers.with_parties(Waiver.objects)
            .filter(
                status=Status.ACTIVE,
                risk__overall__in=levels,
                start__lte=now.date() - timedelta(days=rules.older_than_days),
                control_owner__isnull=False,
            )
            .exclude(reviews__outcome="")
            .order_by("pk")
        )
        if not due:
            continue
        if dry_run:
            done += [(w.reference, f"would be reviewed (every {every} days)") for w in due]
            continue
        try:
            done += _open(version, every, due, now, now + timedelta(days=rules.due_days))
        except IntegrityError:
            continue  # another worker opened it first
    return done


@transaction.atomic
def _open(version, every: int, due: list[Waiver], now: datetime, due_at: datetime):
    campaign = Campaign.objects.create(
        every_days=every, opened_on=now.date(), opened_at=now, due_at=due_at, policy_version=version
    )
    Review.objects.bulk_create(
        Review(campaign=campaign, waiver=w, owner=w.control_owner, due_at=due_at) for w in due
    )
    notify.publish_many(
        "review.requested",
        [(w, {"campaign": campaign.pk, "due": due_at.isoformat()}, [w.control_owner]) for w in due],
        now,
    )
    audit.append_many(
        [("system", "campaign.opened", "campaign", str(campaign.pk),
          {"every_days": every, "reviews": len(due), "due": due_at.isoformat()}, now)]
        + [("system", "review.requested", "waiver", w.reference,
            {"campaign": campaign.pk, "owner": w.control_owner.username}, now) for w in due]
    )  # fmt: skip
    return [(w.reference, f"review requested from {w.control_owner.username}") for w in due]


def check_overdue(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Flag open reviews past their due time to their owner, and escalate those overdue by
    the policy's grace to compliance; each once."""
    rules = policies.compiled(policies.active_version()).document.reviews
    open_reviews = Review.objects.filter(outcome="").select_related("waiver__customer", "owner")
    compliance = notify.holders(COMPLIANCE)
    steps = [  # (what is marked, reviews due by then, event, who is told, what is said)
        ("flagged_at", now, "review.overdue", lambda r: [r.owner], "overdue: owner told"),
        ("escalated_at", now - timedelta(days=rules.escalate_after_days), "review.escalated",
         lambda r: compliance, "overdue: escalated to compliance"),
    ]  # fmt: skip
    done = []
    for field, due_by, event, told, said in steps:
        late = open_reviews.filter(due_at__lte=due_by, **{f"{field}__isnull": True})
        if dry_run:
            done += [(r.waiver.reference, f"would be {said}") for r in late]
            continue
        with transaction.atomic():
            held = list(late.select_for_update(of=("self",), skip_locked=True))
            Review.objects.filter(pk__in=[r.pk for r in held]).update(**{field: now})
            facts = [(r, {"due": r.due_at.isoformat(), "owner": r.owner.username}) for r in held]
            notify.publish_many(event, [(r.waiver, data, told(r)) for r, data in facts], now)
            audit.append_many([("system", event, "waiver", r.waiver.reference,
                                {"campaign": r.campaign_id, **data}, now)
                               for r, data in facts])  # fmt: skip
        done += [(r.waiver.reference, said) for r in held]
    return done


def close_finished(now: datetime) -> list[tuple[str, str]]:
    """Close the reviews of exceptions no longer active, then campaigns with none open."""
    done = []
    with transaction.atomic():
        moot = list(
            Review.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(outcome="")
            .exclude(waiver__status=Status.ACTIVE)
            .select_related("waiver")
        )
        if moot:
            Review.objects.filter(pk__in=[r.pk for r in moot]).update(
                outcome=Review.Outcome.ENDED, decided_at=now,
                rationale="the exception ended before its review",
            )  # fmt: skip
            audit.append_many(
                [("system", "review.ended", "waiver", r.waiver.reference,
                  {"campaign": r.campaign_id, "status": r.waiver.status}, now) for r in moot]
            )  # fmt: skip
            done += [(r.waiver.reference, "review closed: the exception ended") for r in moot]
    for campaign in Campaign.objects.filter(closed_at__isnull=True):
        done += _close_if_finished(campaign.pk, now)
    return done


def _close_if_finished(pk: int, now: datetime) -> list[tuple[str, str]]:
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=pk)
        if campaign.closed_at or campaign.reviews.filter(outcome="").exists():
            return []
        campaign.closed_at = now
        campaign.save(update_fields=["closed_at"])
        outcomes = dict(campaign.reviews.values_list("outcome").annotate(n=Count("pk")))
        audit.append("system", "campaign.closed", campaign, {"outcomes": outcomes}, at=now)
    return [(f"campaign {pk}", "closed: every review has its outcome")]


def attest(pk: int, by: User, outcome: str, rationale: str, now: datetime | None = None) -> Review:
    """Record the owner's outcome of one review; `terminate` ends the exception early in
    the same transaction, `amend` asks its requester for an amendment."""
    now = now or clock.now()
    problems = []
    if outcome not in DECIDED_BY_OWNER:
        choices = ", ".join(DECIDED_BY_OWNER)
        problems.append(Problem("outcome", "invalid_choice", f"must be one of {choices}"))
    if not (rationale or "").strip():
        problems.append(Problem("rationale", "required", "say why"))
    if problems:
        raise Invalid(problems)
    try:
        with transaction.atomic():
            review = visible_reviews(by).select_for_update(of=("self",)).filter(pk=pk).first()
            if review is None:
                raise waivers.NotFound(f"review {pk}")
            waivers.require_attester(review.waiver, by)
            if review.outcome:
                raise Denied("already_recorded", f"this review was recorded: {review.outcome}")
            reference = review.waiver.reference
            if outcome == Review.Outcome.TERMINATE:
                waivers.terminate(reference, by, f"governance review: {rationale}", now)
            elif outcome == Review.Outcome.AMEND:
                waiver = waivers.get(reference)
                notify.publish("review.amend", waiver, {"rationale": rationale},
                               [waiver.requester], now)  # fmt: skip
            review.outcome, review.rationale = outcome, rationale
            review.decided_by, review.decided_at = by, now
            review.save()
            details = {"campaign": review.campaign_id, "rationale": rationale}
            audit.append(by.username, f"review.{outcome}", review.waiver, details, at=now)
    except Denied as denied:
        said = {"review": pk, "code": denied.code, "message": denied.message}
        with transaction.atomic():
            audit.append(by.username, "review.refused", None, said, object_type="review",
                         object_ref=str(pk), at=now)  # fmt: skip
        denied.audited = True
        raise
    _close_if_finished(review.campaign_id, now)
    return review


def visible_reviews(user: User):
    """Compliance, policy admins and admins see every review; a control owner their own."""
    reviews = Review.objects.select_related("waiver__customer", "owner", "campaign")
    if roles_of(user) & {"auditor", "admin", "policy_admin"}:
        return reviews
    return reviews.filter(owner=user)


def progress(campaigns) -> list[dict]:
    """Each campaign with how many of its reviews are done, open, and overdue."""
    counts = {
        row["campaign"]: row
        for row in Review.objects.filter(campaign__in=campaigns)
        .values("campaign")
        .annotate(
            total=Count("pk"),
            done=Count("pk", filter=~Q(outcome="")),
            overdue=Count("pk", filter=Q(outcome="", flagged_at__isnull=False)),
            escalated=Count("pk", filter=Q(outcome="", escalated_at__isnull=False)),
        )
    }
    rows = []
    for campaign in campaigns:
        c = counts.get(campaign.pk, {"total": 0, "done": 0, "overdue": 0, "escalated": 0})
        percent = round(100 * c["done"] / c["total"]) if c["total"] else 100
        rows.append({**c, "campaign": campaign, "open": c["total"] - c["done"], "percent": percent})
    return rows
