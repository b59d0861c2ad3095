"""Evaluating a request: eligibility with every reason, risk with its rules, route, triggers."""

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from waiverdesk.core.evaluation import (
    EvaluationError,
    Override,
    ProductFacts,
    RequestFacts,
    evaluate,
)
from waiverdesk.core.policy import load_policy

POLICY = load_policy((Path(__file__).parents[3] / "policies" / "default.yaml").read_text())
TODAY = date(2027, 1, 4)
ANALYTICS = ProductFacts("AN-EDGE", "Analytics", "low")
DATABASE = ProductFacts("DB-ENT", "Database", "high")
SECURITY = ProductFacts("SEC-GW", "Security", "medium")
JUSTIFIED = {"benefit": "b", "alternatives": "a", "customer_impact": "c", "why_not_standard": "w"}

SHORT_ACCESS = RequestFacts(
    type="temporary_access",
    customer="GLOBEX-002",
    products=(ANALYTICS,),
    license_type="subscription",
    region="AMER",
    start=date(2027, 2, 1),
    end=date(2027, 3, 2),
    scope={"seats": 50},
    financials={"list_value": 12000, "concession": 3000},
    justification=JUSTIFIED,
)
BIG_DISCOUNT = replace(
    SHORT_ACCESS,
    type="volume_discount",
    products=(DATABASE,),
    end=date(2028, 6, 30),
    scope={"seats": 1500, "quantity": 1500, "discount_pct": 35},
    financials={"list_value": 900000, "concession": 315000},
    evidence={"business_impact_analysis": "x"},
    outcomes=({"metric": "m", "target": 1},),
)


def tiers(evaluation):
    return [step.tier for step in evaluation.route]


def test_a_short_temporary_access_for_a_low_risk_product_needs_one_manager():
    result = evaluate(POLICY, SHORT_ACCESS, TODAY)
    assert result.eligible
    assert tiers(result) == ["manager"]
    assert result.route[0].role == "sales_manager" and result.route[0].required == 1
    assert result.risk.overall == "low"
    assert result.triggers == ()


def test_a_large_long_discount_on_a_high_risk_product_climbs_to_the_executive_tier():
    result = evaluate(POLICY, BIG_DISCOUNT, TODAY)
    assert result.eligible, result.problems
    assert tiers(result) == ["manager", "deal_desk", "finance", "legal", "executive"]
    assert result.route[-1].required == 2
    assert result.risk.overall == "critical"
    assert result.risk.scores["financial"].value == 5
    assert result.risk.scores["financial"].rule == "concession of EUR 250,000 or more"
    assert result.risk.scores["compliance"].rule == "covers a high-risk product"
    assert [t.name for t in result.triggers] == ["beyond_review_window"]


def test_each_risk_dimension_takes_its_highest_matching_rule_and_names_it():
    result = evaluate(POLICY, replace(SHORT_ACCESS, scope={"seats": 250}), TODAY)
    assert result.risk.scores["operational"].value == 3
    assert result.risk.scores["operational"].rule == "200 seats or more, or four products or more"
    assert result.risk.scores["reputational"].value == 1
    assert result.risk.scores["reputational"].rule == "baseline: no rule matched"


def test_an_override_replaces_a_score_and_moves_the_route():
    override = {"compliance": Override(5, "regulator inquiry open", "leo")}
    result = evaluate(POLICY, SHORT_ACCESS, TODAY, override)
    assert result.risk.scores["compliance"].value == 5
    assert result.risk.scores["compliance"].rule == "overridden by leo: regulator inquiry open"
    assert result.risk.overall == "critical"
    assert tiers(result) == ["manager", "legal", "executive"]


def test_longer_durations_escalate_and_flag_the_review_window():
    long_access = replace(SHORT_ACCESS, end=date(2027, 4, 30))  # 89 days > 60-day window
    result = evaluate(POLICY, long_access, TODAY)
    assert tiers(result) == ["manager", "deal_desk"]
    (trigger,) = result.triggers
    assert trigger.name == "beyond_review_window"
    assert "trigger beyond_review_window" in result.route[1].reasons[0]


@pytest.mark.parametrize(
    ("facts", "trigger", "tier"),
    [
        (replace(SHORT_ACCESS, products=(SECURITY,)), "security_family", "legal"),
        (
            replace(SHORT_ACCESS, customer_exceptions_last_365_days=3),
            "repeated_customer",
            "finance",
        ),
        (replace(SHORT_ACCESS, renewal_count=2, kind="renewal"), "renewal_chain", "executive"),
    ],
)
def test_review_triggers_add_their_tier(facts, trigger, tier):
    result = evaluate(POLICY, facts, TODAY)
    assert trigger in [t.name for t in result.triggers]
    assert tier in tiers(result)


def test_every_eligibility_problem_is_reported_with_its_field():
    request = replace(
        SHORT_ACCESS,
        license_type="perpetual",
        start=date(2027, 1, 1),
        end=date(2027, 9, 1),
        scope={"seats": 0},
        justification={},
    )
    result = evaluate(POLICY, request, TODAY)
    assert not result.eligible
    found = {(p.field, p.code) for p in result.problems}
    assert found == {
        ("license_type", "not_in_scope"),
        ("end", "after_max_duration"),
        ("start", "in_past"),
        ("justification.benefit", "required"),
        ("justification.customer_impact", "required"),
        ("justification.why_not_standard", "required"),
        ("eligibility", "not_eligible"),
    }


def test_the_maximum_duration_is_counted_in_days_inclusive():
    limit = POLICY.types["temporary_access"].max_duration_days  # 120
    at_limit = replace(SHORT_ACCESS, start=date(2027, 2, 1), end=date(2027, 5, 31))
    assert at_limit.duration_days == limit
    assert evaluate(POLICY, at_limit, TODAY).eligible
    over = replace(at_limit, end=date(2027, 6, 1))
    assert [p.code for p in evaluate(POLICY, over, TODAY).problems] == ["after_max_duration"]


def test_a_start_today_is_fine_and_yesterday_is_in_the_past():
    assert evaluate(POLICY, replace(SHORT_ACCESS, start=TODAY), TODAY).eligible
    yesterday = replace(SHORT_ACCESS, start=date(2027, 1, 3))
    assert [p.code for p in evaluate(POLICY, yesterday, TODAY).problems] == ["in_past"]


def test_a_renewal_or_amendment_may_keep_a_start_in_the_past():
    amendment = replace(SHORT_ACCESS, start=date(2026, 12, 1), kind="amendment")
    assert evaluate(POLICY, amendment, TODAY).eligible


def test_product_families_and_regions_outside_the_scope_are_refused():
    policy = load_policy(
        POLICY.source.replace(
            "      families: [Database, Analytics, Collaboration, Infrastructure, Security]",
            "      families: [Database]\n      regions: [EMEA]",
        )
    )
    request = replace(BIG_DISCOUNT, products=(DATABASE, ANALYTICS), region="AMER")
    problems = {(p.field, p.code) for p in evaluate(policy, request, TODAY).problems}
    assert problems == {("products", "family_not_in_scope"), ("region", "not_in_scope")}


def test_evidence_may_be_a_text_or_an_attachment():
    overage = replace(SHORT_ACCESS, type="seat_overage")
    assert [p.field for p in evaluate(POLICY, overage, TODAY).problems] == [
        "evidence.usage_forecast"
    ]
    assert evaluate(
        POLICY, replace(overage, evidence={"usage_forecast": "80 seats"}), TODAY
    ).eligible
    attached = replace(overage, attachment_kinds=frozenset({"usage_forecast"}))
    assert evaluate(POLICY, attached, TODAY).eligible


def test_an_unknown_type_names_the_known_ones():
    result = evaluate(POLICY, replace(SHORT_ACCESS, type="free_lunch"), TODAY)
    (problem,) = result.problems
    assert problem.field == "type" and "temporary_access" in problem.message


def test_an_expression_failing_at_run_time_names_itself():
    policy = load_policy(
        POLICY.source.replace(
            'when: "request.scope.seats >= 1000"', 'when: "100 / request.scope.seats >= 1"'
        )
    )
    with pytest.raises(EvaluationError, match=r"risk.operational\[0\].when"):
        evaluate(policy, replace(SHORT_ACCESS, scope={}), TODAY)
