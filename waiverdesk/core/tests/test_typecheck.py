"""A policy that passes its check cannot fail on a request: every branch of every condition
is checked against the facts, and no condition may cost more than a request can afford."""

import time
from datetime import date

import pytest

from waiverdesk.core.evaluation import SAMPLE, evaluate, request_facts
from waiverdesk.core.policy import load_policy
from waiverdesk.core.tests.test_policy import DEFAULT, changed, problems_of

MISSPELT = "request.financials.concesion >= 1.0"
WRONG_TYPE = "request.region == 3"


@pytest.mark.parametrize(
    "when",
    [
        f"true || {MISSPELT}",
        f"{MISSPELT} || true",
        f"false && {MISSPELT}",
        f"{MISSPELT} && false",
        f"request.scope.seats > 0 ? true : {MISSPELT}",
        f"request.scope.seats > 0 ? {MISSPELT} : true",
        f"({MISSPELT}) ? true : false",
        f"request.products.exists(p, p == 'X' && {MISSPELT})",
        "request.products.all(p, p.size() > request.financials.concesion)",
        "request.products.map(p, request.financials.concesion).size() > 0",
        "request.products.filter(p, request.financials.concesion > 1.0).size() > 0",
        f"!({MISSPELT})",
        "has(request.financials.concesion)",
        "request['financials']['concesion'] > 1.0",
    ],
)
def test_a_misspelt_field_is_refused_wherever_it_stands(when):
    problems = problems_of(changed(lambda d: d["tiers"][3].update(when=when)))
    assert len(problems) == 1
    assert problems[0].startswith("tiers[3].when: column ")
    assert "request.financials has no field 'concesion'; did you mean concession?" in problems[0]


@pytest.mark.parametrize(
    ("when", "says"),
    [
        (f"true || {WRONG_TYPE}", "'==' compares string with int"),
        ("false && request.scope.seats > 'ten'", "'>' compares int with string"),
        ("size(request.scope.seats) > 1 || true", "size() needs text, a list or a map, not int"),
        ("request.financials.concession + 1 > 2.0", "'+' mixes double and int"),
        ("request.scope.seats && true", "'&&' needs true or false, but request.scope.seats is int"),
        ("request.region.startsWith(1)", "startsWith() works on text, not int"),
        ("request.duration_days > 3 ? 'long' : 4", "the two branches of '? :' differ"),
        ("request.products.exists(p, p.seats > 1)", "string, which has no fields"),
        ("request.scope.seats.exists(p, p > 1)", "exists() works on a list or a map, not int"),
        ("'EMEA' in request.region", "'in' needs a list or a map on its right, not string"),
        ("reqest.region == 'EMEA'", "'reqest' is not known here; conditions see request, risk"),
        ("request.region.contains() || true", "contains() with 0 argument(s) is unknown"),
        ("request.region.lower() == 'emea'", "calls unknown function lower"),
    ],
)
def test_a_type_mistake_is_refused_in_any_branch(when, says):
    (problem,) = problems_of(changed(lambda d: d["tiers"][3].update(when=when)))
    assert problem.startswith("tiers[3].when:")
    assert says in problem


def test_risk_is_not_visible_to_eligibility_and_the_overall_level_sees_only_scores():
    def mistakes(d):
        d["types"]["seat_overage"]["eligibility"][0]["when"] = "risk.financial >= 1"
        d["risk"]["overall"][0]["when"] = "risk.overall == 'high'"

    problems = problems_of(changed(mistakes))
    assert any(
        p.startswith("types.seat_overage.eligibility[0].when:") and "'risk' is not known" in p
        for p in problems
    )
    assert any(
        p.startswith("risk.overall[0].when:") and "risk has no field 'overall'" in p
        for p in problems
    )


def test_conditions_on_lines_name_line_and_column():
    when = "request.scope.seats > 0 &&\n  request.scope.sets > 0"
    (problem,) = problems_of(changed(lambda d: d["tiers"][3].update(when=when)))
    assert problem.startswith("tiers[3].when: line 2, column 17: request.scope has no field 'sets'")


def test_every_well_typed_form_the_language_offers_is_accepted():
    conditions = [
        "request.financials.concession >= 25000 && request.scope.seats >= 1.5",
        "request.scope.discount_pct * 2.0 > 10.0 || request.scope.seats % 2 == 0",
        "size(request.products) >= 2 || request.products.size() > 3",
        "request.families.exists(f, f.startsWith('Data')) && 'Security' in request.families",
        "request.products.map(p, size(p)).all(n, n > 0)",
        "request.region in ['EMEA', 'APAC'] && request.license_type != 'perpetual'",
        "has(request.scope.seats) ? request.scope.seats > 10 : false",
        "timestamp(request.start + 'T00:00:00Z').getFullYear() >= 2027",
        "int(request.financials.concession) > 1 && double(request.scope.seats) > 1.0",
        "{'EMEA': 1, 'APAC': 2}[request.region] == 1 || request.region == 'NA'",
        "request['scope']['seats'] > 0 && -request.scope.seats < 0 && !(request.renewal_count > 2)",
        "risk.level >= 3 || risk.overall == 'critical' || risk.max >= 4 || risk.total > 12",
        "request.customer.exceptions_last_365_days >= 3 && request.kind == 'renewal'",
        "request.region.matches('^E.*') || request.region.endsWith('A')",
        "uint(request.scope.seats) > 1u || string(request.scope.seats) == '10'",
    ]
    for when in conditions:
        load_policy(changed(lambda d, w=when: d["tiers"][3].update(when=w)))


def test_nested_iteration_is_refused_at_once_not_after_minutes_of_evaluation():
    deep = "request.products.all(a, " * 7 + "a == 'x'" + ")" * 7
    started = time.process_time()
    (problem,) = problems_of(changed(lambda d: d["tiers"][1].update(when=deep)))
    assert time.process_time() - started < 2
    assert "nests more than 2 of all/exists/map/filter" in problem


def test_a_condition_whose_worst_case_cost_is_too_high_is_refused():
    items = ", ".join(str(i) for i in range(400))
    when = f"[{items}].all(a, [{items}].exists(b, a == b))"
    (problem,) = problems_of(changed(lambda d: d["tiers"][1].update(when=when)))
    assert "may take up to" in problem and "at most 100,000" in problem


def test_a_condition_nested_too_deeply_is_refused():
    when = "(" * 40 + "true" + ")" * 40
    (problem,) = problems_of(changed(lambda d: d["tiers"][1].update(when=when)))
    assert "nests deeper than 32 levels" in problem


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("name: x\ntypes: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("name: x\ntypes: {}\ntiers: []\nsummary: " + "9" * 5000, "a value cannot be read"),
    ],
)
def test_a_malformed_document_is_refused_with_a_message(source, says):
    (problem,) = problems_of(source)
    assert says in problem


def test_a_huge_number_in_the_document_is_refused_at_its_place():
    source = changed(lambda d: d["types"]["seat_overage"].update(max_duration_days=10**4000))
    assert "types.seat_overage.max_duration_days: must be at most 36,500" in problems_of(source)


def test_the_checked_facts_are_the_facts_evaluation_hands_to_the_policy():
    """Each field the checker knows is a field a request has, so a checked policy runs."""
    policy = load_policy(DEFAULT)
    facts = request_facts(policy, SAMPLE.__class__(**{**SAMPLE.__dict__, "type": "seat_overage"}))
    every_field = " && ".join(
        f"has(request.{section}.{name})"
        for section in ("scope", "financials", "customer")
        for name in facts[section]
    )
    checked = load_policy(changed(lambda d: d["tiers"][3].update(when=every_field)))
    result = evaluate(
        checked, SAMPLE.__class__(**{**SAMPLE.__dict__, "type": "seat_overage"}), date(2000, 1, 1)
    )
    assert "legal" in [step.tier for step in result.route]
