"""Evaluate one request against a policy: eligibility, risk, triggers, route."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from . import explain, typecheck
from .errors import Problem
from .expressions import make_context
from .policy import DIMENSIONS, LEVELS, Policy


@dataclass(frozen=True)
class ProductFacts:
    code: str
    family: str
    risk_class: str  # low | medium | high


RISK_CLASS_LEVEL = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class RequestFacts:
    """Everything the policy may look at, gathered by the caller."""

    type: str
    customer: str
    products: tuple[ProductFacts, ...]
    license_type: str
    region: str
    start: date
    end: date
    scope: dict[str, Any] = field(default_factory=dict)
    financials: dict[str, Any] = field(default_factory=dict)
    money: dict[str, Any] = field(default_factory=dict)  # the figures in the base currency
    justification: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    attachment_kinds: frozenset[str] = frozenset()
    outcomes: tuple[Any, ...] = ()
    control_owner: str = ""
    account_owner: str = ""
    renewal_count: int = 0
    customer_exceptions_last_365_days: int = 0
    kind: str = "new"  # new | renewal | amendment

    @property
    def duration_days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class ScoreResult:
    value: int
    rule: str


@dataclass(frozen=True)
class Risk:
    scores: dict[str, ScoreResult]
    overall: str

    def as_dict(self) -> dict[str, Any]:
        return {**{d: s.value for d, s in self.scores.items()}, "overall": self.overall}


@dataclass(frozen=True)
class FiredTrigger:
    name: str
    flag: str
    add_tiers: tuple[str, ...]


@dataclass(frozen=True)
class RouteStep:
    tier: str
    role: str
    required: int
    reasons: tuple[str, ...]
    stage: int = 0  # the steps of one stage are open at the same time


@dataclass(frozen=True)
class Evaluation:
    problems: tuple[Problem, ...]
    risk: Risk
    triggers: tuple[FiredTrigger, ...]
    route: tuple[RouteStep, ...]

    @property
    def eligible(self) -> bool:
        return not self.problems


class EvaluationError(RuntimeError):
    """A policy expression failed at run time; names the expression (`path`)."""

    def __init__(self, path: str, detail: str):
        self.path, self.detail = path, detail
        super().__init__(f"{path}: {detail}")


@dataclass(frozen=True)
class Override:
    score: int
    rationale: str
    by: str


def evaluate(
    policy: Policy,
    request: RequestFacts,
    today: date,
    overrides: dict[str, Override] | None = None,
) -> Evaluation:
    """Return eligibility (every problem), risk with its rules, fired triggers and route."""
    exception_type = policy.types.get(request.type)
    facts = request_facts(policy, request)
    context = make_context({"request": facts})
    problems = check_eligibility(policy, request, today, context)
    if exception_type is None:
        risk = Risk({d: ScoreResult(1, "baseline") for d in DIMENSIONS}, "low")
        return Evaluation(tuple(problems), risk, (), ())
    risk = score_risk(policy, context, overrides or {})
    context.add_variable("risk", _risk_variables(risk))
    triggers = tuple(
        FiredTrigger(trigger.name, trigger.flag, tuple(trigger.add_tiers))
        for i, trigger in enumerate(policy.document.triggers)
        if _holds(policy, f"triggers[{i}].when", context)
    )
    return Evaluation(tuple(problems), risk, triggers, build_route(policy, context, triggers))


def request_facts(policy: Policy, request: RequestFacts) -> dict[str, Any]:
    """The `request` variable that policy expressions see, with every field present."""
    exception_type = policy.types.get(request.type)
    scope = request.scope or {}
    financials = request.financials or {}
    list_value = float(financials.get("list_value") or 0)
    concession = float(financials.get("concession") or 0)
    revenue_effect = float(financials.get("revenue_effect") or 0)
    base = request.money or {}  # recorded at submission; without it the figures are in base
    max_duration = exception_type.max_duration_days if exception_type else 0
    window = (exception_type.review_window_days or max_duration) if exception_type else 0
    return {
        "type": request.type,
        "kind": request.kind,
        "customer": {
            "id": request.customer,
            "exceptions_last_365_days": request.customer_exceptions_last_365_days,
        },
        "products": [p.code for p in request.products],
        "families": sorted({p.family for p in request.products}),
        "product_risk": max(
            (RISK_CLASS_LEVEL.get(p.risk_class, 1) for p in request.products), default=1
        ),
        "license_type": request.license_type,
        "region": request.region,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "duration_days": request.duration_days,
        "max_duration_days": max_duration,
        "review_window_days": window,
        "renewal_count": request.renewal_count,
        "scope": {
            "seats": int(scope.get("seats") or 0),
            "quantity": int(scope.get("quantity") or 0),
            "discount_pct": float(scope.get("discount_pct") or 0),
            "features": list(scope.get("features") or []),
        },
        "financials": {
            "currency": str(financials.get("currency") or ""),
            "list_value": list_value,
            "concession": concession,
            "concession_pct": round(100.0 * concession / list_value, 2) if list_value else 0.0,
            "revenue_effect": revenue_effect,
            "base_currency": policy.document.base_currency,
            "list_value_base": float(base.get("list_value_base", list_value)),
            "concession_base": float(base.get("concession_base", concession)),
            "revenue_effect_base": float(base.get("revenue_effect_base", revenue_effect)),
        },
    }


def check_eligibility(
    policy: Policy, request: RequestFacts, today: date, context: Any
) -> list[Problem]:
    """Every reason the request is not eligible under its type; empty when it is."""
    exception_type = policy.types.get(request.type)
    if exception_type is None:
        known = ", ".join(sorted(policy.types))
        return [Problem("type", "unknown_type", f"'{request.type}' is not a type; use {known}")]
    problems: list[Problem] = []
    limits = exception_type.scope
    if not request.products:
        problems.append(Problem("products", "required", "name at least one product"))
    for product in request.products:
        if limits.products and product.code not in limits.products:
            problems.append(
                Problem(
                    "products",
                    "not_in_scope",
                    f"{product.code} may not receive a {request.type} exception",
                )
            )
        elif limits.families and product.family not in limits.families:
            problems.append(
                Problem(
                    "products",
                    "family_not_in_scope",
                    f"{product.code} is in family {product.family}, "
                    f"which may not receive a {request.type} exception",
                )
            )
    if limits.license_types and request.license_type not in limits.license_types:
        problems.append(
            Problem(
                "license_type",
                "not_in_scope",
                f"license type must be one of {', '.join(limits.license_types)}",
            )
        )
    if limits.regions and request.region not in limits.regions:
        problems.append(
            Problem("region", "not_in_scope", f"region must be one of {', '.join(limits.regions)}")
        )
    if request.end < request.start:
        problems.append(Problem("end", "before_start", "end must not be before start"))
    elif request.duration_days > exception_type.max_duration_days:
        problems.append(
            Problem(
                "end",
                "after_max_duration",
                f"lasts {request.duration_days} days; a {request.type} exception "
                f"may last at most {exception_type.max_duration_days} days",
            )
        )
    if request.start < today and request.kind == "new":
        problems.append(Problem("start", "in_past", "start must not be in the past"))
    for path in exception_type.required_fields:
        if _is_blank(_lookup(request, path)):
            problems.append(Problem(path, "required", f"{path} is required for this type"))
    for name in exception_type.required_evidence:
        if _is_blank(request.evidence.get(name)) and name not in request.attachment_kinds:
            problems.append(
                Problem(
                    f"evidence.{name}",
                    "required",
                    f"evidence '{name}' is required (a text or an attachment)",
                )
            )
    type_name = request.type
    for i, rule in enumerate(exception_type.eligibility):
        if not _holds(policy, f"types.{type_name}.eligibility[{i}].when", context):
            problems.append(Problem("eligibility", "not_eligible", rule.message))
    return problems


def score_risk(policy: Policy, context: Any, overrides: dict[str, Override]) -> Risk:
    """Score each dimension (the highest matching rule, 1 when none) and the overall level."""
    scores: dict[str, ScoreResult] = {}
    for dimension in DIMENSIONS:
        if dimension in overrides:
            o = overrides[dimension]
            scores[dimension] = ScoreResult(o.score, f"overridden by {o.by}: {o.rationale}")
            continue
        best = ScoreResult(1, "baseline: no rule matched")
        for i, rule in enumerate(getattr(policy.document.risk, dimension)):
            if rule.score > best.value and _holds(policy, f"risk.{dimension}[{i}].when", context):
                best = ScoreResult(rule.score, rule.because)
        scores[dimension] = best
    values = {d: s.value for d, s in scores.items()}
    level_context = make_context({"risk": {**values, **_aggregates(values)}})
    overall = "low"
    for i, level_rule in enumerate(policy.document.risk.overall):
        if _holds(policy, f"risk.overall[{i}].when", level_context):
            overall = level_rule.level
            break
    return Risk(scores, overall)


def build_route(
    policy: Policy, context: Any, triggers: tuple[FiredTrigger, ...]
) -> tuple[RouteStep, ...]:
    """The tiers that apply, in the policy's order of seniority, each with why it applies."""
    added: dict[str, list[str]] = {}
    for trigger in triggers:
        for name in trigger.add_tiers:
            added.setdefault(name, []).append(f"trigger {trigger.name}: {trigger.flag}")
    route, stage, group = [], -1, None
    for i, tier in enumerate(policy.tiers):
        reasons = list(added.get(tier.name, []))
        if _holds(policy, f"tiers[{i}].when", context):
            reasons.insert(0, _why(tier.when))
        if reasons:
            if tier.stage is None or tier.stage != group:
                stage += 1  # a tier of no stage is a stage of its own
            group = tier.stage
            route.append(RouteStep(tier.name, tier.role, tier.approvers, tuple(reasons), stage))
    return tuple(route)


def _why(when: str) -> str:
    """Why a tier applies, in plain language where the condition allows it."""
    plain = explain.condition(when)
    if plain == "always":
        return "every request needs this tier"
    return f"because {plain}" if plain else f"condition: {when}"


def _aggregates(values: dict[str, int]) -> dict[str, int]:
    return {"max": max(values.values()), "total": sum(values.values())}


def _risk_variables(risk: Risk) -> dict[str, Any]:
    values = {d: s.value for d, s in risk.scores.items()}
    return {
        **values,
        **_aggregates(values),
        "overall": risk.overall,
        "level": LEVELS.index(risk.overall) + 1,
    }


def _holds(policy: Policy, path: str, context: Any) -> bool:
    try:
        result = policy.expression(path).evaluate(context)
    except Exception as exc:  # CEL raises KeyError, TypeError, RuntimeError, ...
        raise EvaluationError(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(result, bool):
        raise EvaluationError(path, f"must be true or false, got {result!r}")
    return result


def _lookup(request: RequestFacts, path: str) -> Any:
    head, _, rest = path.partition(".")
    value: Any = getattr(request, head, None)
    for part in rest.split(".") if rest else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and not value)


SAMPLE = RequestFacts(
    type="",
    customer="SAMPLE",
    products=(ProductFacts("SAMPLE", "sample", "medium"),),
    license_type="subscription",
    region="EMEA",
    start=date(2000, 1, 1),
    end=date(2000, 3, 31),
    scope={"seats": 10, "quantity": 1, "discount_pct": 10.0, "features": ["x"]},
    financials={"currency": "EUR", "list_value": 1000.0, "concession": 100.0},
)


def condition_problems(policy: Policy) -> list[str]:
    """Every problem of every condition, checked statically in every branch against the
    facts it can see (`request`, and `risk` where the policy has scored it)."""
    facts = request_facts(policy, replace(SAMPLE, type=next(iter(policy.types))))
    request = typecheck.schema_of(facts, "request")
    scores = {d: 3 for d in DIMENSIONS}
    levels = typecheck.schema_of({**scores, **_aggregates(scores)}, "risk")
    sample_risk = Risk({d: ScoreResult(3, "") for d in DIMENSIONS}, "medium")
    risk = typecheck.schema_of(_risk_variables(sample_risk), "risk")
    problems = []
    for path, expression in policy.expressions.items():
        if path.startswith("risk.overall"):
            env = {"risk": levels}
        elif path.startswith(("tiers", "triggers")):
            env = {"request": request, "risk": risk}
        else:
            env = {"request": request}
        problems += [f"{path}: {p}" for p in typecheck.check(expression.source, env)]
    return problems


def dry_run(policy: Policy) -> list[str]:
    """Run every expression of `policy` once on a sample request; return the failures."""
    values = {d: 3 for d in DIMENSIONS}
    sample_risk = _risk_variables(Risk({d: ScoreResult(3, "") for d in DIMENSIONS}, "medium"))
    level_context = make_context({"risk": {**values, **_aggregates(values)}})
    problems = []
    for type_name in policy.types:
        facts = request_facts(policy, replace(SAMPLE, type=type_name))
        request_context = make_context({"request": facts})
        full_context = make_context({"request": facts, "risk": sample_risk})
        for path in policy.expressions:
            if path.startswith("types.") and not path.startswith(f"types.{type_name}."):
                continue
            if path.startswith("risk.overall"):
                context = level_context
            elif path.startswith(("tiers", "triggers")):
                context = full_context
            else:
                context = request_context
            try:
                _holds(policy, path, context)
            except EvaluationError as exc:
                problems.append(str(exc))
    return list(dict.fromkeys(problems))
