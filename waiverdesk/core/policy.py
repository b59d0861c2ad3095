"""The policy document: YAML validated into typed, compiled objects.

A broken document is refused with every problem named by its place in the
document (`types.volume_discount.max_duration_days: must be a positive
integer`), so a policy author can fix it without reading code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .expressions import Expression, ExpressionError, compile_expression

DIMENSIONS = ("financial", "operational", "reputational", "compliance")
LEVELS = ("low", "medium", "high", "critical")
FIXED_ROLES = ("requester", "control_owner", "implementer", "auditor", "policy_admin", "admin")
PERSON_ROLES = ("requester", "control_owner", "account_owner")
# The parts of a request an edit may change, as the policy's `material:` names them.
MATERIAL_FIELDS = ("type", "customer", "products", "license_type", "region", "start", "end",
                   "scope", "financials", "justification", "evidence", "outcomes",
                   "control_owner")  # fmt: skip
DEFAULT_MATERIAL = ("type", "customer", "products", "license_type", "region", "start", "end",
                    "scope", "financials", "control_owner")  # fmt: skip
# Where a late step escalates: the next tier's role, the admins, or a role the policy names.
ESCALATE_TO = ("next_tier", "admins")

# Bounded, so that no number in a policy overflows a date or a counter downstream.
PositiveInt = Annotated[int, Field(gt=0, le=1_000_000)]
Days = Annotated[int, Field(gt=0, le=36_500)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
Score = Annotated[int, Field(ge=1, le=5)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ScopeLimits(_Strict):
    products: list[str] = []
    families: list[str] = []
    license_types: list[str] = []
    regions: list[str] = []


class Rule(_Strict):
    when: str
    message: str


class Check(_Strict):
    """A contract or regulatory check, recorded as passed by the approvers of `tier` (when
    it is on the route) or else of the final step."""

    name: Name
    label: str
    tier: Name | None = None


class ExceptionType(_Strict):
    label: str
    description: str = ""
    initiators: list[Name] = ["requester"]
    scope: ScopeLimits = ScopeLimits()
    max_duration_days: Days
    review_window_days: Days | None = None
    eligibility: list[Rule] = []
    required_fields: list[str] = []
    required_evidence: list[Name] = []
    checks: list[Check] = []
    grants: str = ""
    at_end: str = ""
    # What it changes in the customer's entitlement: item -> where its value comes from.
    entitlement: dict[Literal["seats", "features", "discount_pct", "term_end", "usage_cap"],
                      Literal["scope.seats", "scope.quantity", "scope.discount_pct",
                              "scope.features", "end"]] = {}  # fmt: skip
    # The fields whose change under review starts the approvals again; a change to the
    # others (a typo in the justification, evidence no rule reads) keeps them.
    material: list[Literal[MATERIAL_FIELDS]] = list(DEFAULT_MATERIAL)
    # Days after its start date when a request nobody decided lapses (it always lapses once
    # its end date has passed).
    lapse_after_days: Days | None = None


class RiskRule(_Strict):
    when: str
    score: Score
    because: str


class LevelRule(_Strict):
    level: Literal["low", "medium", "high", "critical"]
    when: str


class RiskModel(_Strict):
    financial: list[RiskRule] = []
    operational: list[RiskRule] = []
    reputational: list[RiskRule] = []
    compliance: list[RiskRule] = []
    overall: list[LevelRule] = []


class Tier(_Strict):
    name: Name
    role: Name
    label: str = ""
    approvers: PositiveInt = 1
    sla_hours: PositiveInt = 48
    when: str = "false"
    # Tiers with the same stage (listed next to each other) are open at the same time.
    stage: PositiveInt | None = None
    # Whether an approver may hand this tier's decisions to a delegate while away; unsaid,
    # every tier may be delegated except an executive one.
    delegable: bool | None = None
    # Hours after the step opened when it escalates (unsaid: it does not), and to whom.
    escalate_after_hours: PositiveInt | None = None
    escalate_to: Name = "next_tier"

    @property
    def may_delegate(self) -> bool:
        if self.delegable is None:
            return "executive" not in (self.name, self.role)
        return self.delegable


class Trigger(_Strict):
    name: Name
    when: str
    add_tiers: list[Name] = []
    flag: str


class SeparationOfDuties(_Strict):
    conflicted: list[Literal["account_owner", "control_owner"]] = ["account_owner"]


class Termination(_Strict):
    roles: list[Name] = ["control_owner", "admin"]


class Reminders(_Strict):
    days_before_end: list[Days] = [30, 7, 1]


class Notifications(_Strict):
    decisions: list[Literal["requester", "control_owner", "account_owner"]] = [
        "requester",
        "control_owner",
    ]


class TaskSpec(_Strict):
    """A piece of implementation work: who does it (a role, or the waiver's requester or
    control owner), due so many days after approval, and whether activation waits for it."""

    name: Name
    title: str
    role: Name
    due_days: int = Field(default=2, ge=0, le=36_500)
    required: bool = True


class Implementation(_Strict):
    tasks: list[TaskSpec] = []
    revert: TaskSpec | None = None


class Reviews(_Strict):
    """Governance reviews (G2): every so many days (sooner for riskier exceptions) the
    control owners re-attest the exceptions active for longer than `older_than_days`."""

    every_days: PositiveInt = 90
    every_days_by_risk: dict[Literal["low", "medium", "high", "critical"], PositiveInt] = {}
    older_than_days: int = Field(default=30, ge=0, le=36_500)
    due_days: PositiveInt = 14
    escalate_after_days: int = Field(default=7, ge=0, le=36_500)

    def cadence(self, level: str) -> int:
        return self.every_days_by_risk.get(level, self.every_days)


Share = Annotated[float, Field(gt=0, le=1)]


class Patterns(_Strict):
    """The thresholds of pattern detection (G3), over the requests of the last `window_days`."""

    window_days: PositiveInt = 365
    repeat_min: PositiveInt = 3  # exceptions of one type for one customer
    renewals_min: PositiveInt = 2  # renewals that make a chain
    near_threshold_pct: float = Field(default=10.0, gt=0, le=50)  # "just under" a tier's value
    near_threshold_min: PositiveInt = 5
    near_threshold_ratio: float = Field(
        default=2.0, ge=1, le=1_000
    )  # as many under as over, times this
    pair_min_decisions: PositiveInt = 10
    pair_min_rate: Share = 0.95
    type_min_share: Share = 0.4
    type_min_count: PositiveInt = 20
    digest_every_days: PositiveInt = 7


class Report(_Strict):
    """The leadership report, mailed when each month, quarter or year ends to the people
    who hold these roles (or have these user names)."""

    every: Literal["month", "quarter", "year"] = "quarter"
    subscribers: list[Name] = []


class Retention(_Strict):
    """How long records are kept once the last request they concern has ended (SPEC P2): the
    personal data of people no longer active and of customers' contacts, and the free text
    and files of the requests themselves. Legal holds suspend both."""

    personal_data_days: Days = 730
    records_days: Days = 3650


class PolicyDocument(_Strict):
    name: str
    summary: str = ""
    # Thresholds are in this currency; requests are converted to it when submitted.
    base_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    types: dict[Name, ExceptionType]
    tiers: list[Tier]
    risk: RiskModel = RiskModel()
    triggers: list[Trigger] = []
    separation_of_duties: SeparationOfDuties = SeparationOfDuties()
    termination: Termination = Termination()
    reminders: Reminders = Reminders()
    notify: Notifications = Notifications()
    implementation: Implementation = Implementation()
    reviews: Reviews = Reviews()
    patterns: Patterns = Patterns()
    report: Report = Report()
    retention: Retention | None = None  # without it, nothing is erased on a schedule

    @field_validator("types")
    @classmethod
    def _at_least_one_type(cls, value: dict) -> dict:
        if not value:
            raise ValueError("must define at least one exception type")
        return value

    @field_validator("tiers")
    @classmethod
    def _at_least_one_tier(cls, value: list) -> list:
        if not value:
            raise ValueError("must define at least one approval tier")
        return value


class PolicyError(ValueError):
    """A policy document that cannot be used; `problems` lists `path: message` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Policy:
    """A validated policy with every expression compiled once."""

    document: PolicyDocument
    source: str
    digest: str
    expressions: dict[str, Expression]

    @property
    def types(self) -> dict[str, ExceptionType]:
        return self.document.types

    @property
    def tiers(self) -> list[Tier]:
        return self.document.tiers

    def tier(self, name: str) -> Tier:
        return next(t for t in self.document.tiers if t.name == name)

    def expression(self, path: str) -> Expression:
        return self.expressions[path]

    @property
    def approver_roles(self) -> list[str]:
        return list(dict.fromkeys(t.role for t in self.document.tiers))


MAX_DOCUMENT = 1_000_000  # characters
# libyaml's safe loader where PyYAML was built with it (about ten times faster to parse).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_policy(source: str) -> Policy:
    """Parse, validate and compile a policy document, or raise PolicyError."""
    if len(source) > MAX_DOCUMENT:
        raise PolicyError([f"document: longer than {MAX_DOCUMENT:,} characters"])
    try:
        data = yaml.load(source, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in problem:  # libyaml's own limit
            raise PolicyError([f"{where}: nested too deeply to be a policy"]) from None
        raise PolicyError([f"{where}: not valid YAML ({problem})"]) from None
    except RecursionError:
        raise PolicyError(["document: nested too deeply to be a policy"]) from None
    except ValueError as exc:  # a number with thousands of digits, a date out of range
        raise PolicyError([f"document: a value cannot be read ({exc})"]) from None
    if not isinstance(data, dict):
        raise PolicyError(["document: must be a mapping with name, types and tiers"])
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyError([_describe(error) for error in exc.errors()]) from None
    problems = _check_references(document)
    expressions: dict[str, Expression] = {}
    for path, text in _expression_sources(document):
        try:
            expressions[path] = compile_expression(text)
        except ExpressionError as exc:
            problems.append(f"{path}: {exc}")
    policy = Policy(
        document=document,
        source=source,
        digest=hashlib.sha256(source.encode()).hexdigest(),
        expressions=expressions,
    )
    # Check every condition in every branch against the facts it can see, then run each
    # once on a sample request: a misspelt field, a type mistake or a condition too costly
    # to evaluate is found now, not on a customer's request.
    from .evaluation import condition_problems, dry_run

    problems += condition_problems(policy)
    if not problems:
        problems += dry_run(policy)
    if problems:
        raise PolicyError(problems)
    return policy


def _expression_sources(document: PolicyDocument) -> list[tuple[str, str]]:
    sources = []
    for type_name, exception_type in document.types.items():
        for i, rule in enumerate(exception_type.eligibility):
            sources.append((f"types.{type_name}.eligibility[{i}].when", rule.when))
    for dimension in DIMENSIONS:
        for i, rule in enumerate(getattr(document.risk, dimension)):
            sources.append((f"risk.{dimension}[{i}].when", rule.when))
    for i, level_rule in enumerate(document.risk.overall):
        sources.append((f"risk.overall[{i}].when", level_rule.when))
    for i, tier in enumerate(document.tiers):
        sources.append((f"tiers[{i}].when", tier.when))
    for i, trigger in enumerate(document.triggers):
        sources.append((f"triggers[{i}].when", trigger.when))
    return sources


def _check_references(document: PolicyDocument) -> list[str]:
    problems = []
    tier_names = [t.name for t in document.tiers]
    for i, name in enumerate(tier_names):
        if name in tier_names[:i]:
            problems.append(f"tiers[{i}].name: '{name}' is defined twice")
        if document.tiers[i].role in FIXED_ROLES:
            problems.append(f"tiers[{i}].role: '{document.tiers[i].role}' is not an approver role")
    problems += _check_tiers(document.tiers)
    for i, trigger in enumerate(document.triggers):
        for name in trigger.add_tiers:
            if name not in tier_names:
                problems.append(f"triggers[{i}].add_tiers: no tier named '{name}'")
    approver_roles = {t.role for t in document.tiers}
    for type_name, exception_type in document.types.items():
        for i, check in enumerate(exception_type.checks):
            if check.tier is not None and check.tier not in tier_names:
                problems.append(f"types.{type_name}.checks[{i}].tier: no tier named '{check.tier}'")
        for role in exception_type.initiators:
            if role not in FIXED_ROLES and role not in approver_roles:
                problems.append(f"types.{type_name}.initiators: no role named '{role}'")
        if (
            exception_type.review_window_days
            and exception_type.review_window_days > exception_type.max_duration_days
        ):
            problems.append(
                f"types.{type_name}.review_window_days: must not exceed max_duration_days"
            )
        for i, field in enumerate(exception_type.required_fields):
            if field.split(".")[0] not in REQUIRABLE_SECTIONS:
                problems.append(
                    f"types.{type_name}.required_fields[{i}]: '{field}' is not a request field"
                )
    for role in document.termination.roles:
        if role not in FIXED_ROLES and role not in approver_roles:
            problems.append(f"termination.roles: no role named '{role}'")
    specs = [(f"tasks[{i}]", t) for i, t in enumerate(document.implementation.tasks)]
    for where, task in [*specs, ("revert", document.implementation.revert)]:
        if task.role not in FIXED_ROLES and task.role not in approver_roles:
            problems.append(f"implementation.{where}.role: no role named '{task.role}'")
    return problems


def _check_tiers(tiers: list[Tier]) -> list[str]:
    """Stages that are one group each, and escalations that lead somewhere."""
    problems, roles = [], {t.role for t in tiers}
    for i, tier in enumerate(tiers):
        earlier = [t.stage for t in tiers[:i] if t.stage is not None]
        if tier.stage is not None and tier.stage in earlier and tiers[i - 1].stage != tier.stage:
            problems.append(f"tiers[{i}].stage: the tiers of stage {tier.stage} must be listed "
                            "next to each other")  # fmt: skip
        if tier.escalate_after_hours is not None and tier.escalate_after_hours < tier.sla_hours:
            problems.append(f"tiers[{i}].escalate_after_hours: must be at least its sla_hours "
                            f"({tier.sla_hours})")  # fmt: skip
        if tier.escalate_to not in ESCALATE_TO and tier.escalate_to not in roles:
            problems.append(f"tiers[{i}].escalate_to: must be next_tier, admins or a tier's "
                            f"role, not '{tier.escalate_to}'")  # fmt: skip
    return problems


def escalation_role(tiers: list[Tier], name: str) -> str:
    """The role a late step of tier `name` escalates to: the next tier's (admin after the
    last tier), the admins', or the one the policy names."""
    i = next(i for i, t in enumerate(tiers) if t.name == name)
    to = tiers[i].escalate_to
    if to == "next_tier":
        later = [t for t in tiers[i + 1 :] if t.role != tiers[i].role]
        return later[0].role if later else "admin"
    return "admin" if to == "admins" else to


REQUIRABLE_SECTIONS = (
    "scope",
    "financials",
    "justification",
    "evidence",
    "outcomes",
    "control_owner",
    "account_owner",
)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "string_pattern_mismatch": "must be a lower-case name (letters, digits, _)",
}


def _describe(error: dict[str, Any]) -> str:
    path = _bracket_indices(error["loc"]) or "document"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "greater_than" and ctx.get("gt") == 0:
        message = "must be a positive integer"
    elif kind in ("greater_than_equal", "less_than_equal") and ctx.get("le") == 5:
        message = "must be between 1 and 5"
    elif kind in ("less_than_equal", "greater_than_equal"):
        bound = ctx.get("le", ctx.get("ge"))
        message = f"must be at most {bound:,}" if "le" in ctx else f"must be at least {bound:,}"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')}"
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    elif kind == "string_pattern_mismatch" and path == "base_currency":
        message = "must be a currency code such as EUR or USD"
    else:
        message = _MESSAGES.get(kind, error["msg"].lower())
    return f"{path}: {message}"


def _bracket_indices(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
