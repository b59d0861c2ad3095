"""waiverdesk demo — a realistic data set: people for every role, customers, products,
and requests in every state of their life."""

from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.commands import ActionCommand
from waiverdesk.directory import services as directory
from waiverdesk.directory.models import Customer, Profile
from waiverdesk.governance import reviews
from waiverdesk.policies import services as policies
from waiverdesk.policies.models import PolicyVersion
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver

DEMO_PASSWORD = "try-waiverdesk"
PEOPLE = {
    "rita": ["requester"],
    "sam": ["requester"],
    "mona": ["sales_manager"],
    "mark": ["sales_manager", "requester"],
    "dana": ["deal_desk"],
    "dirk": ["deal_desk"],
    "fiona": ["finance"],
    "felix": ["finance"],
    "leo": ["legal"],
    "eva": ["executive"],
    "edgar": ["executive"],
    "olga": ["control_owner"],
    "carl": ["control_owner"],
    "ivan": ["implementer"],
    "audrey": ["auditor"],
    "paula": ["policy_admin"],
    "adam": ["admin"],
}
PRODUCTS = [
    ("DB-ENT", "Database Enterprise", "Database", "high"),
    ("DB-STD", "Database Standard", "Database", "medium"),
    ("DB-CACHE", "In-memory Cache", "Database", "low"),
    ("AN-CLOUD", "Analytics Cloud", "Analytics", "medium"),
    ("AN-EDGE", "Analytics Edge", "Analytics", "low"),
    ("AN-BI", "BI Dashboards", "Analytics", "low"),
    ("SEC-GW", "Secure Gateway", "Security", "high"),
    ("SEC-ID", "Identity Manager", "Security", "medium"),
    ("COL-SUITE", "Collaboration Suite", "Collaboration", "low"),
    ("COL-MEET", "Meetings", "Collaboration", "low"),
    ("INF-K8S", "Kubernetes Platform", "Infrastructure", "medium"),
    ("INF-OBS", "Observability", "Infrastructure", "low"),
]
CUSTOMERS = [
    ("ACME-001", "Acme Corporation", "EMEA", "mark"),
    ("GLOBEX-002", "Globex", "AMER", "mark"),
    ("INITECH-003", "Initech", "AMER", ""),
    ("UMBRELLA-004", "Umbrella Health", "EMEA", "mark"),
    ("STARK-005", "Stark Industries", "AMER", ""),
    ("WAYNE-006", "Wayne Enterprises", "AMER", ""),
    ("WONKA-007", "Wonka Foods", "EMEA", ""),
    ("TYRELL-008", "Tyrell Systems", "APAC", ""),
    ("CYBERDYNE-009", "Cyberdyne", "APAC", "mark"),
    ("SOYLENT-010", "Soylent Nutrition", "EMEA", ""),
    ("HOOLI-011", "Hooli", "AMER", ""),
    ("PIEDPIPER-012", "Pied Piper", "AMER", ""),
]
JUSTIFICATION = {
    "benefit": "Secures a multi-year commitment and expands usage into a new division.",
    "alternatives": "Standard tiered pricing and a shorter pilot were offered and declined.",
    "customer_impact": "Without it the customer's migration stalls and the renewal is at risk.",
    "why_not_standard": "The standard tiers do not reward a commitment of this size.",
}


class Command(ActionCommand):
    help = "Load demo data (once): people, customers, products and requests in every state."

    def add_arguments(self, parser) -> None:
        pass

    def handle(self, *args, **options) -> None:
        if Waiver.objects.exists():
            self.stdout.write("demo data is already loaded")
            return
        if not PolicyVersion.objects.filter(is_active=True).exists():
            policies.publish(settings.DEFAULT_POLICY_FILE.read_text(), note="default policy")
        directory.add_users(PEOPLE, {name: f"{name}@example.com" for name in PEOPLE})
        # Everyone signs in to the web UI with the same demo password (hashed once).
        User.objects.filter(username__in=PEOPLE).update(password=make_password(DEMO_PASSWORD))
        # Outside a sandbox or `make run`, a password everyone knows is changed at first use.
        forced = not (settings.SANDBOX or settings.DEVELOPMENT)
        for user in User.objects.filter(username__in=PEOPLE):
            Profile.objects.update_or_create(user=user, defaults={"must_change_password": forced})
        for code, name, family, risk in PRODUCTS:
            directory.add_product(code, name, family, risk)
        known = set(Customer.objects.values_list("external_id", flat=True))
        for external_id, name, region, owner in CUSTOMERS:
            contact = f"licensing@{external_id.split('-')[0].lower()}.example"
            if external_id not in known:  # a demo cut short is loaded again
                directory.add_customer(external_id, name, region, owner, contact_email=contact)
        self.requests(clock.now())
        counts = {
            s: Waiver.objects.filter(status=s).count()
            for s in Waiver.objects.values_list("status", flat=True).distinct()
        }
        self.stdout.write(f"demo data loaded: {Waiver.objects.count()} requests " + str(counts))
        self.stdout.write(f"sign in as any demo person (rita, mona, dana…) with '{DEMO_PASSWORD}'"
                          + ("; each chooses their own password at first sign-in" if forced
                             else ""))  # fmt: skip

    @transaction.atomic
    def requests(self, now: datetime) -> None:
        u = {name: User.objects.get(username=name) for name in PEOPLE}
        today = now.date()

        def body(kind, customer, products, start, days, **extra):
            data = {
                "type": kind,
                "customer": customer,
                "products": products,
                "license_type": "subscription",
                "region": "EMEA",
                "start": start.isoformat(),
                "end": (start + timedelta(days=days - 1)).isoformat(),
                "justification": JUSTIFICATION,
                "control_owner": "olga",
                "scope": {"seats": 50},
                "financials": {"currency": "EUR", "list_value": 40000, "concession": 8000},
                "outcomes": [{"metric": "seats in use by day 60", "target": 45}],
            }
            for key, value in extra.items():
                data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
            return data

        def at(days_ago: int) -> datetime:
            """09:30 that many days ago, and never later than an hour before now: no demo
            request waits a negative time."""
            morning = datetime.combine(today - timedelta(days=days_ago), time(9, 30), now.tzinfo)
            return min(morning, now - timedelta(days=days_ago, hours=1))

        def create(data, who="rita", when=0):
            return services.create(data, u[who], now=at(when)).reference

        def approve_all(ref, when=0):
            checks = [
                c.name
                for c in services.policy_of(services.get(ref)).types[services.get(ref).type].checks
            ]
            for step in services.get(ref).current_route():
                for _ in range(step.required):
                    person = next(
                        p
                        for p, roles in PEOPLE.items()
                        if step.role in roles and services.may_act(services.get(ref), u[p]) is None
                    )
                    services.decide(
                        ref,
                        u[person],
                        "approve",
                        "Within policy.",
                        checks=list(checks),
                        now=at(when),
                    )
            # The implementation work is done the same day, by whoever it is for.
            for task in services.get(ref).tasks.filter(required=True):
                doer = task.owner or u[next(p for p, r in PEOPLE.items() if task.role in r)]
                services.complete_task(task.pk, doer, "Done.", now=at(when))

        # draft
        create(
            body(
                "seat_overage",
                "WONKA-007",
                ["COL-SUITE"],
                today + timedelta(days=10),
                60,
                evidence={"usage_forecast": "Peak of 80 seats during the merger."},
            )
        )
        # submitted: a short temporary access, one manager
        create(
            body(
                "temporary_access",
                "INITECH-003",
                ["AN-EDGE"],
                today + timedelta(days=3),
                45,
                submit=True,
            )
        )
        # in review: a large, long volume discount on a high-risk product climbs to the top
        big = create(
            body(
                "volume_discount",
                "ACME-001",
                ["DB-ENT", "SEC-GW"],
                today + timedelta(days=14),
                540,
                scope={"seats": 1200, "quantity": 1200, "discount_pct": 35},
                financials={"list_value": 900000, "concession": 315000},
                evidence={"business_impact_analysis": "Adds 4.1M over three years."},
                submit=True,
            ),
            who="sam",
            when=2,
        )
        services.decide(big, u["mona"], "approve", "Strategic account.", now=at(1))
        # changes requested
        ref = create(
            body(
                "term_extension",
                "GLOBEX-002",
                ["AN-CLOUD"],
                today + timedelta(days=20),
                80,
                submit=True,
            ),
            when=3,
        )
        services.decide(
            ref, u["mona"], "request_changes", "Attach the customer's renewal timeline.", now=at(2)
        )
        # rejected
        ref = create(
            body(
                "seat_overage",
                "HOOLI-011",
                ["COL-MEET"],
                today + timedelta(days=5),
                90,
                scope={"seats": 400},
                evidence={"usage_forecast": "Flat at 400."},
                submit=True,
            ),
            when=6,
        )
        services.decide(
            ref, u["mona"], "reject", "Buy the seats; this is permanent demand.", now=at(5)
        )
        # withdrawn
        ref = create(
            body(
                "temporary_access",
                "TYRELL-008",
                ["INF-OBS"],
                today + timedelta(days=7),
                30,
                region="APAC",
                submit=True,
            ),
            who="sam",
            when=4,
        )
        services.withdraw(ref, u["sam"], "Renewal signed early.", now=at(3))
        # approved, starting next month
        ref = create(
            body(
                "temporary_access",
                "STARK-005",
                ["INF-K8S"],
                today + timedelta(days=30),
                60,
                submit=True,
            ),
            when=8,
        )
        approve_all(ref, when=7)
        # active, with a renewal under way
        active = create(
            body(
                "seat_overage",
                "WAYNE-006",
                ["AN-BI"],
                today - timedelta(days=40),
                120,
                evidence={"usage_forecast": "Seasonal peak, 50 extra seats."},
                submit=True,
            ),
            when=45,
        )
        approve_all(active, when=44)
        services.renew(
            active,
            u["rita"],
            {
                "end": (today + timedelta(days=150)).isoformat(),
                "justification": {
                    **JUSTIFICATION,
                    "benefit": "Peak lasts longer than forecast; keeps the customer.",
                },
            },
            now=at(1),
        )
        # active, then terminated early
        ref = create(
            body(
                "temporary_access",
                "SOYLENT-010",
                ["DB-CACHE"],
                today - timedelta(days=20),
                60,
                submit=True,
            ),
            when=25,
        )
        approve_all(ref, when=24)
        # active, then amended (the original is superseded)
        old = create(
            body(
                "temporary_access",
                "PIEDPIPER-012",
                ["COL-SUITE"],
                today - timedelta(days=10),
                40,
                submit=True,
            ),
            when=15,
        )
        approve_all(old, when=14)
        # expired
        gone = create(
            body(
                "temporary_access",
                "CYBERDYNE-009",
                ["AN-EDGE"],
                today - timedelta(days=100),
                30,
                region="APAC",
                submit=True,
            ),
            when=105,
        )
        approve_all(gone, when=104)
        services.sweep(now=at(0))
        services.terminate(ref, u["olga"], "Renewal signed; access no longer needed.", now=at(0))
        amendment = services.amend(
            old, u["rita"], {"scope": {"seats": 80}, "submit": True}, now=at(0)
        ).reference
        approve_all(amendment, when=0)
        services.sweep(now=at(0))
        # The Wayne exception has been active for 40 days: its governance review is open.
        reviews.open_due_campaigns(at(0))
