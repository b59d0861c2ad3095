"""Pattern detection (G3): what turns temporary accommodations into de facto standards.
Every report is SQL aggregates over the requests of the policy's window, with its evidence
and the requests behind it; the thresholds come from the policy."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, DurationField, Exists, ExpressionWrapper, F, OuterRef, Q

from waiverdesk.audit import services as audit
from waiverdesk.core.lifecycle import Status
from waiverdesk.core.policy import Patterns, Policy
from waiverdesk.notifications import services as notify
from waiverdesk.policies import services as policies
from waiverdesk.waivers.models import Approval, Waiver

from .models import Digest

SHOWN = 20  # requests listed per finding
MOST = 50  # findings per report, the strongest first
WERE_APPROVED = (Status.APPROVED, Status.ACTIVE, Status.EXPIRED, Status.TERMINATED,
                 Status.SUPERSEDED)  # fmt: skip
NOT_PURSUED = (Status.DRAFT, Status.WITHDRAWN, Status.REJECTED)
# A comparison in a tier's or trigger's condition that adds approvers above a value.
THRESHOLD = re.compile(
    r"request\.(financials\.[a-z_]+|scope\.[a-z_]+|duration_days)\s*(>=|>)\s*(\d+(?:\.\d+)?)"
)


@dataclass
class Finding:
    kind: str
    title: str
    detail: str
    evidence: dict = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


def findings(now: datetime, policy: Policy | None = None) -> list[Finding]:
    """Every pattern the policy's thresholds find in the requests of its window."""
    policy = policy or policies.compiled(policies.active_version())
    rules = policy.document.patterns
    recent = Waiver.objects.filter(submitted_at__gte=now - timedelta(days=rules.window_days))
    return [
        *repeated(recent, rules),
        *renewal_chains(rules),
        *near_thresholds(recent, rules, policy),
        *approval_pairs(recent, rules),
        *type_volume(recent, rules),
    ]


def _refs(waivers, limit: int = SHOWN) -> list[str]:
    return list(waivers.order_by("-submitted_at").values_list("reference", flat=True)[:limit])


def repeated(recent, rules: Patterns) -> list[Finding]:
    """Customers with repeated exceptions of one type within the window, the most first."""
    groups = list(
        recent.values("customer", "customer__external_id", "customer__name", "type")
        .annotate(n=Count("pk"))
        .filter(n__gte=rules.repeat_min)
        .order_by("-n", "customer__external_id")[:MOST]
    )
    behind: dict[tuple, list[str]] = {}
    if groups:  # the requests behind every group shown, in one query
        wanted = Q()
        for g in groups:
            wanted |= Q(customer=g["customer"], type=g["type"])
        rows = recent.filter(wanted).order_by("-submitted_at")
        for customer, kind, ref in rows.values_list("customer", "type", "reference"):
            behind.setdefault((customer, kind), []).append(ref)
    return [
        Finding(
            "repeated",
            f"{g['customer__name']}: {g['n']} {g['type']} exceptions",
            f"{g['customer__external_id']} asked for {g['n']} exceptions of type {g['type']} "
            f"in {rules.window_days} days (the policy flags {rules.repeat_min}): its standard "
            "terms may not fit.",
            {"customer": g["customer__external_id"], "type": g["type"], "count": g["n"]},
            behind[(g["customer"], g["type"])][:SHOWN],
        )
        for g in groups
    ]


def renewal_chains(rules: Patterns) -> list[Finding]:
    """Exceptions renewed at least `renewals_min` times, at the end of their chain."""
    renewed_again = Waiver.objects.filter(
        predecessor=OuterRef("pk"), kind=Waiver.Kind.RENEWAL
    ).exclude(status__in=NOT_PURSUED)
    ends = (
        Waiver.objects.filter(renewal_count__gte=rules.renewals_min)
        .exclude(status__in=NOT_PURSUED)
        .exclude(Exists(renewed_again))
        .select_related("customer")
        .order_by("-renewal_count", "reference")
    )
    found = []
    for w in ends[:MOST]:
        chain, link = [], w
        while link is not None and len(chain) <= w.renewal_count:
            chain.append(link.reference)
            link = link.predecessor
        found.append(
            Finding(
                "renewal_chain",
                f"{w.reference}: renewed {w.renewal_count} times",
                f"{w.customer.name}'s {w.type} exception has been renewed {w.renewal_count} "
                f"times (the policy flags {rules.renewals_min}): a temporary accommodation "
                "is becoming permanent.",
                {"customer": w.customer.external_id, "type": w.type, "renewals": w.renewal_count},
                chain,
            )
        )
    return found


def thresholds(policy: Policy) -> list[tuple[str, float, str]]:
    """The values at which the policy adds an approval tier or flags a trigger:
    (field, value, what it adds), from the conditions' simple comparisons."""
    found = {}
    conditions = [(t.when, f"the {t.label or t.name} tier") for t in policy.document.tiers]
    conditions += [(t.when, f"the {t.name} trigger") for t in policy.document.triggers]
    for when, adds in conditions:
        for name, op, number in THRESHOLD.findall(when):
            value = float(number) + (1 if op == ">" and name == "duration_days" else 0)
            found.setdefault((name, value), adds)
    return [(name, value, adds) for (name, value), adds in sorted(found.items())]


def near_thresholds(recent, rules: Patterns, policy: Policy) -> list[Finding]:
    """Requests clustered just under a value that would add a tier: many more within
    `near_threshold_pct` below it than as far above it. One aggregate per field."""
    by_field: dict[str, list[tuple[float, str]]] = {}
    for name, value, adds in thresholds(policy):
        by_field.setdefault(name, []).append((value, adds))
    pct = rules.near_threshold_pct / 100
    found = []
    for name, values in by_field.items():
        rows, band = _measured(recent, name)
        counts = {}
        for i, (value, _adds) in enumerate(values):
            counts[f"under{i}"] = Count("pk", filter=band(value * (1 - pct), value))
            counts[f"over{i}"] = Count("pk", filter=band(value, value * (1 + pct)))
        totals = rows.aggregate(**counts)
        for i, (value, adds) in enumerate(values):
            under, over = totals[f"under{i}"], totals[f"over{i}"]
            if under < max(rules.near_threshold_min, rules.near_threshold_ratio * max(over, 1)):
                continue
            label = name.split(".")[-1].replace("_", " ")
            found.append(
                Finding(
                    "near_threshold",
                    f"{under} requests just under {label} {value:g}",
                    f"{under} requests asked for a {label} within {rules.near_threshold_pct:g} % "
                    f"below {value:g}, where {adds} starts, and {over} just above it: requests "
                    "may be shaped to avoid that approval.",
                    {
                        "field": name,
                        "threshold": value,
                        "adds": adds,
                        "just_under": under,
                        "just_over": over,
                    },
                    _refs(rows.filter(band(value * (1 - pct), value))),
                )  # fmt: skip
            )
    return found


def _measured(recent, name: str):
    """Requests with the field to compare, and the condition "low <= field < high"."""
    if name == "duration_days":  # counts both ends: end - start + 1
        span = ExpressionWrapper(F("end") - F("start"), output_field=DurationField())
        days = lambda n: timedelta(days=n - 1)  # noqa: E731
        return recent.alias(span=span), lambda low, high: Q(span__gte=days(low),
                                                            span__lt=days(high))  # fmt: skip
    key = name.replace(".", "__")
    if name.startswith("financials.") and name.endswith("_base"):
        key = f"money__{name.split('.')[1]}"  # recorded in the base currency at submission
    return recent, lambda low, high: Q(**{f"{key}__gte": low, f"{key}__lt": high})


def approval_pairs(recent, rules: Patterns) -> list[Finding]:
    """Requester–approver pairs with many decisions, nearly all approvals."""
    decisions = Approval.objects.filter(waiver__in=recent).exclude(user=F("waiver__requester"))
    tally = {"n": Count("pk"), "approved": Count("pk", filter=Q(decision="approve"))}
    pairs = list(
        decisions.values("waiver__requester__username", "user__username")
        .annotate(**tally)
        .filter(n__gte=rules.pair_min_decisions, approved__gte=F("n") * rules.pair_min_rate)
        .order_by("-n")[:MOST]
    )
    overall = {
        row["user__username"]: row["approved"] / row["n"]
        for row in decisions.filter(user__username__in={p["user__username"] for p in pairs})
        .values("user__username")
        .annotate(**tally)
    }
    found = []
    for p in pairs:
        requester, approver = p["waiver__requester__username"], p["user__username"]
        rate = p["approved"] / p["n"]
        found.append(
            Finding(
                "approval_pair",
                f"{approver} approves {requester} {rate:.0%} of the time",
                f"{approver} decided {p['n']} of {requester}'s requests and approved "
                f"{p['approved']} ({rate:.0%}; {approver}'s rate over everyone is "
                f"{overall[approver]:.0%}): a pair that always agrees.",
                {
                    "requester": requester,
                    "approver": approver,
                    "decisions": p["n"],
                    "approved": p["approved"],
                    "approver_rate": overall[approver],
                },
                _refs(
                    recent.filter(
                        requester__username=requester, approvals__user__username=approver
                    ).distinct()
                ),
            )  # fmt: skip
        )
    return found


def type_volume(recent, rules: Patterns) -> list[Finding]:
    """Exception types so common that the standard offer, not the exception, should change."""
    by_type = list(
        recent.values("type").annotate(
            n=Count("pk"), approved=Count("pk", filter=Q(status__in=WERE_APPROVED))
        )
    )
    total = sum(t["n"] for t in by_type)
    found = []
    for t in sorted(by_type, key=lambda t: -t["n"]):
        share = t["n"] / total
        if t["n"] < rules.type_min_count or share < rules.type_min_share:
            continue
        found.append(
            Finding(
                "type_volume",
                f"{t['type']}: {share:.0%} of all requests",
                f"{t['n']} of {total} requests ({share:.0%}) were {t['type']} exceptions, "
                f"{t['approved']} of them approved: the standard offer may need to change.",
                {"type": t["type"], "count": t["n"], "share": share, "approved": t["approved"]},
                _refs(recent.filter(type=t["type"])),
            )
        )
    return found


def send_digest(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """Mail the findings to compliance and the policy admins every `digest_every_days`
    (when there are any; the digest is recorded either way)."""
    policy = policies.compiled(policies.active_version())
    last = Digest.objects.order_by("-at").first()
    if last and last.at + timedelta(days=policy.document.patterns.digest_every_days) > now:
        return []
    found = findings(now, policy)
    if dry_run:
        return [("patterns", f"would send a digest of {len(found)} findings")]
    holders = [u for role in ("auditor", "policy_admin") for u in notify.holders(role)]
    people = notify.readers(holders, "patterns.digest") if found else []
    lines = [f"- {f.title}\n  {f.detail}\n  {', '.join(f.references[:5])}" for f in found]
    body = (
        f"waiverdesk found {len(found)} patterns in the requests of the last "
        f"{policy.document.patterns.window_days} days:\n\n"
        + "\n".join(lines)
        + f"\n\nSee them at {settings.BASE_URL}/governance/\n-- waiverdesk\n"
    )
    with transaction.atomic():
        digest = Digest.objects.create(at=now, findings=[asdict(f) for f in found])
        for person in people:
            notify.queue_email(person.email, f"Pattern digest: {len(found)} findings", body,
                               "patterns.digest", now)  # fmt: skip
        kinds = sorted({f.kind for f in found})
        audit.append("system", "patterns.digest", digest, {"findings": len(found), "kinds": kinds},
                     at=now)  # fmt: skip
    return [("patterns", f"digest of {len(found)} findings sent to {len(people)} people")]
