from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils.functional import cached_property

from waiverdesk.core.lifecycle import Status

User = settings.AUTH_USER_MODEL


class ReferenceCounter(models.Model):
    """A year's reference numbers. On SQLite, `last` is the last number handed out (a
    writing transaction holds the database's lock anyway). On PostgreSQL a number is `last`
    plus how far the sequence `waivers_reference` has moved past the year's `base`: handing
    one out locks no row, so concurrent creates do not wait for each other's commit
    (migration waivers 0014)."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)
    base = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


def amount_in_base():
    """A waiver's concession in the policy's base currency, -1 when it has none: what lists
    sort by "Amount" (indexed, so that the largest come first without a sort)."""
    return Coalesce(Cast(KT("money__concession_base"), models.FloatField()), models.Value(-1.0))


@dataclass
class InHand:
    """A waiver's parts as one object of it knows them, each whole: written by the service
    handling it, or read once; showing the waiver reads none back (None: not known yet)."""

    steps: list | None = None  # the current round's route, in order
    approvals: dict[int, list] = field(default_factory=dict)  # by step id, for `steps`
    products: list | None = None
    attachments: list | None = None
    conditions: list | None = None
    tasks: list | None = None


class Waiver(models.Model):
    """An exception request, from intake through decision to its end."""

    class Kind(models.TextChoices):
        NEW = "new"
        RENEWAL = "renewal"
        AMENDMENT = "amendment"

    reference = models.CharField(max_length=20, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NEW)
    type = models.CharField(max_length=60)
    status = models.CharField(
        max_length=20, choices=[(s.value, s.value) for s in Status], default=Status.DRAFT
    )
    policy_version = models.ForeignKey(
        "policies.PolicyVersion", on_delete=models.PROTECT, related_name="waivers"
    )
    requester = models.ForeignKey(User, on_delete=models.PROTECT, related_name="requested_waivers")
    control_owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_waivers"
    )
    customer = models.ForeignKey(
        "directory.Customer", on_delete=models.PROTECT, related_name="waivers"
    )
    products = models.ManyToManyField("directory.Product", related_name="waivers")
    license_type = models.CharField(max_length=40)
    region = models.CharField(max_length=16)
    start = models.DateField()
    end = models.DateField()
    scope = models.JSONField(default=dict)
    financials = models.JSONField(default=dict)
    money = models.JSONField(
        default=dict,
        help_text="The figures in the policy's base currency, with the rate and its day, as "
        "converted when the request was submitted.",
    )
    justification = models.JSONField(default=dict)
    evidence = models.JSONField(default=dict)
    outcomes = models.JSONField(default=list, help_text="Measurable outcomes (KPIs) promised.")
    risk = models.JSONField(default=dict)
    risk_overrides = models.JSONField(default=dict)
    triggers = models.JSONField(default=list)
    checks = models.JSONField(
        default=dict, help_text="Contract/regulatory checks passed this round."
    )
    round = models.PositiveIntegerField(
        default=0, help_text="Submissions so far; routes are per round."
    )
    editors = models.JSONField(
        default=dict, help_text="Who edited the request (user id) -> for which round."
    )
    predecessor = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="successors"
    )
    renewal_count = models.PositiveIntegerField(default=0)
    decision = models.CharField(max_length=20, blank=True)
    decision_rationale = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True, help_text="When it took effect.")
    ended_reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()
    concession_base = models.FloatField(
        null=True, blank=True, editable=False,
        help_text="The concession in the policy's base currency at the rate of its pricing (as "
        "money holds it; the filed figure before rates): what the metrics sum.",
    )  # fmt: skip
    search_text = models.TextField(
        blank=True,
        editable=False,
        help_text="What a search finds it by, case-folded (see index_for_search); indexed by "
        "trigrams (PostgreSQL pg_trgm, SQLite FTS5).",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gte=models.F("start")), name="waiver_end_not_before_start"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "start"], name="waiver_activation_idx"),
            models.Index(fields=["status", "end"], name="waiver_sunset_idx"),
            # A customer's history is counted from the index alone (PostgreSQL: INCLUDE).
            models.Index(
                fields=["customer", "submitted_at"],
                include=["status", "id"],
                name="waiver_customer_history_idx",
            ),
            models.Index(fields=["requester", "status"], name="waiver_requester_idx"),
            # The metrics read a period's requests from the index alone (PostgreSQL: INCLUDE),
            # not from the rows with their JSON.
            models.Index(
                fields=["submitted_at"],
                include=[
                    "id",
                    "type",
                    "region",
                    "status",
                    "decision",
                    "decided_at",
                    "activated_at",
                    "end",
                    "updated_at",
                    "policy_version",
                    "kind",
                    "concession_base",
                ],
                name="waiver_metrics_idx",
            ),  # fmt: skip
            # Lists show the newest first: a page is read from the index, not sorted.
            models.Index(fields=["created_at", "id"], name="waiver_created_idx"),
            models.Index(amount_in_base(), "id", name="waiver_amount_idx"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def audit_ref(self) -> str:
        return self.reference

    def current_route(self):
        return self.steps.filter(round=self.round).order_by("position")

    def current_steps(self) -> list:
        """The current round's route, its approvals with it (`in_hand.approvals`), read once
        for this object unless its service has them in hand already."""
        known = self.in_hand
        if known.steps is None:
            known.steps = list(self.current_route())
            known.approvals = {}
            given = Approval.objects.filter(step__in=known.steps)
            for approval in given.select_related("user", "on_behalf_of"):
                known.approvals.setdefault(approval.step_id, []).append(approval)
        return known.steps

    def part(self, name: str) -> list:
        """Its `products`, `attachments`, `conditions` or `tasks`, read once for this object
        unless its service has them in hand already."""
        known = self.in_hand
        if getattr(known, name) is None:
            read = {
                "products": lambda: self.products.all(),
                "attachments": lambda: self.attachments.all(),
                "conditions": lambda: self.conditions.select_related("owner"),
                "tasks": lambda: self.tasks.select_related("owner", "done_by"),
            }[name]
            setattr(known, name, list(read()))
        return getattr(known, name)

    @cached_property
    def in_hand(self) -> InHand:
        """What this object knows of its parts (see InHand); each object read starts empty."""
        return InHand()

    def index_for_search(self, products) -> None:
        """Set what a search finds it by: its reference, type, customer (name and id),
        products (code, name, family), requester (user name and name) and justification."""
        requester = self.requester
        parts = [self.reference, self.type, self.customer.external_id, self.customer.name,
                 requester.username, requester.get_full_name(), self.region]  # fmt: skip
        for product in products:
            parts += [product.code, product.name, product.family]
        parts += [str(v) for v in (self.justification or {}).values() if v]
        self.search_text = " ".join(p for p in parts if p).casefold()


class RouteStep(models.Model):
    """One tier of a waiver's approval route in one submission round."""

    class StepStatus(models.TextChoices):  # the name the API document gives it
        WAITING = "waiting"
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        RETURNED = "returned"  # changes were requested at this step
        CLOSED = "closed"  # closed undecided: a step beside it ended the round, or it lapsed

    State = StepStatus

    waiver = models.ForeignKey(Waiver, on_delete=models.CASCADE, related_name="steps")
    round = models.PositiveIntegerField()
    position = models.PositiveSmallIntegerField()
    tier = models.CharField(max_length=60)
    role = models.CharField(max_length=60)
    required = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=State.choices)
    reasons = models.JSONField(default=list)
    sla_hours = models.PositiveIntegerField()
    stage = models.PositiveSmallIntegerField(
        default=0, help_text="Steps of one stage are open at the same time."
    )
    delegable = models.BooleanField(
        default=True, help_text="Whether a delegate may decide it for an approver who is away."
    )
    escalate_after_hours = models.PositiveIntegerField(null=True, blank=True)
    escalate_to = models.CharField(
        max_length=60, blank=True, help_text="The role it escalates to when it is late."
    )
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(
        null=True, blank=True, help_text="When its deciders were told it is past its SLA."
    )
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="When it escalated: the escalate_to role may decide it."
    )

    class Meta:
        ordering = ["waiver", "round", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["waiver", "round", "position"], name="route_step_unique_position"
            ),
        ]
        indexes = [models.Index(fields=["role", "status"], name="route_step_inbox_idx")]

    def __str__(self) -> str:
        return f"{self.waiver_id} round {self.round} step {self.position} {self.tier}"


class Approval(models.Model):
    """One person's decision on one route step."""

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"
        REQUEST_CHANGES = "request_changes"

    step = models.ForeignKey(RouteStep, on_delete=models.CASCADE, related_name="approvals")
    waiver = models.ForeignKey(Waiver, on_delete=models.CASCADE, related_name="approvals")
    round = models.PositiveIntegerField()
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="approvals")
    on_behalf_of = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="delegated_approvals",
        help_text="The approver who was away, when a delegate decided in their place.",
    )  # fmt: skip
    decision = models.CharField(max_length=20, choices=Decision.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # One person never fills two steps of one route (A4), enforced by the database too.
            models.UniqueConstraint(
                fields=["waiver", "round", "user"], name="approval_one_step_per_person_per_route"
            ),
            models.UniqueConstraint(
                fields=["waiver", "round", "on_behalf_of"],
                name="approval_one_step_per_delegator_per_route",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.decision} step {self.step_id}"


class Delegation(models.Model):
    """An approver's decisions handed to another person for a period (both days included):
    their role, or every approver role they hold when `role` is blank."""

    delegator = models.ForeignKey(User, on_delete=models.PROTECT, related_name="delegations")
    delegate = models.ForeignKey(User, on_delete=models.PROTECT, related_name="delegated_to_me")
    role = models.CharField(max_length=60, blank=True)
    starts = models.DateField()
    ends = models.DateField()
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When it was called off.")

    class Meta:
        ordering = ["starts", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends__gte=models.F("starts")), name="delegation_ends_after"
            ),
        ]
        indexes = [models.Index(fields=["delegate", "ends"], name="delegation_delegate_idx")]

    def __str__(self) -> str:
        return f"{self.delegator_id} to {self.delegate_id} ({self.role or 'every role'})"


class UsedDecisionLink(models.Model):
    """A decision link from an email that has been used, by the digest of its token."""

    digest = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.digest


class Condition(models.Model):
    """An obligation attached to an approval, with an owner and a due date."""

    class State(models.TextChoices):
        OPEN = "open"
        MET = "met"
        BREACHED = "breached"

    waiver = models.ForeignKey(Waiver, on_delete=models.CASCADE, related_name="conditions")
    approval = models.ForeignKey(
        Approval, null=True, on_delete=models.CASCADE, related_name="conditions"
    )
    text = models.TextField()
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="conditions")
    due = models.DateField()
    status = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    customer_visible = models.BooleanField(
        default=False, help_text="Told to the customer in the notice; otherwise internal."
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["due", "id"]
        indexes = [models.Index(fields=["status", "due"], name="condition_due_idx")]

    def __str__(self) -> str:
        return f"{self.text} (due {self.due})"


class Attachment(models.Model):
    """A file of evidence, stored on disk under the data directory by its SHA-256."""

    waiver = models.ForeignKey(Waiver, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(
        max_length=60, help_text="The evidence it provides, e.g. usage_forecast."
    )
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField()

    class Meta:
        ordering = ["uploaded_at", "id"]

    def __str__(self) -> str:
        return self.filename


class Reminder(models.Model):
    """A reminder already sent, by key (`waiver:12:end-7`), so that none is sent twice."""

    key = models.CharField(max_length=80, unique=True)
    sent_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


class Task(models.Model):
    """Implementation work on an approved waiver (from the policy), or its revert at the end."""

    class State(models.TextChoices):
        OPEN = "open"
        DONE = "done"

    waiver = models.ForeignKey(Waiver, on_delete=models.CASCADE, related_name="tasks")
    name = models.CharField(max_length=60)
    title = models.CharField(max_length=200)
    role = models.CharField(max_length=60, help_text="Who may do it.")
    owner = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks",
        help_text="The one person it is for, when the role names one (requester, control owner).",
    )  # fmt: skip
    required = models.BooleanField(default=True, help_text="Activation waits for it.")
    due = models.DateField()
    status = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    done_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["due", "id"]
        constraints = [
            models.UniqueConstraint(fields=["waiver", "name"], name="task_once_per_waiver")
        ]
        indexes = [models.Index(fields=["status", "due"], name="task_due_idx")]

    def __str__(self) -> str:
        return f"{self.title} ({self.waiver_id})"


class InboundEmail(models.Model):
    """An emailed request as it was handled: each Message-ID once, with what became of it."""

    class Outcome(models.TextChoices):
        DRAFT = "draft"  # a draft was made
        QUARANTINED = "quarantined"  # not made a draft; `reason` says why

    message_id = models.CharField(
        max_length=300, unique=True, help_text="The Message-ID, or sha256: of the whole message."
    )
    sender = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    answered = models.BooleanField(default=False)
    reference = models.CharField(max_length=40, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.message_id}: {self.outcome}"


class SavedFilter(models.Model):
    """A person's named search of a list of requests: the list's path and its query."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="saved_filters")
    name = models.CharField(max_length=80)
    path = models.CharField(max_length=200)
    query = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="saved_filter_name_per_user")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


class SentNotice(models.Model):
    """A copy of a customer notice as it was sent: to whom, its text and its PDF."""

    waiver = models.ForeignKey(Waiver, on_delete=models.CASCADE, related_name="sent_notices")
    to = models.EmailField()
    cc = models.TextField(blank=True, help_text="The copy addresses, comma-separated.")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    pdf = models.BinaryField()
    sent_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"{self.waiver_id} to {self.to}"


class PendingUpload(models.Model):
    """A file a person chose on a form that was refused: kept (checked and stored) for them
    to send again with the corrected form, so nobody chooses the same files twice."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=60)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename
