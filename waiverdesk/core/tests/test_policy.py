"""The policy document: every validation error names its place."""

from pathlib import Path

import pytest
import yaml

from waiverdesk.core.expressions import ExpressionError, compile_expression, make_context
from waiverdesk.core.policy import PolicyError, load_policy

DEFAULT = (Path(__file__).parents[3] / "policies" / "default.yaml").read_text()


def changed(mutate) -> str:
    data = yaml.safe_load(DEFAULT)
    mutate(data)
    return yaml.safe_dump(data)


def problems_of(source: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(source)
    return caught.value.problems


def test_the_default_policy_is_valid_and_ships_the_four_worked_examples():
    policy = load_policy(DEFAULT)
    assert set(policy.types) == {
        "volume_discount",
        "temporary_access",
        "term_extension",
        "seat_overage",
    }
    assert policy.approver_roles == ["sales_manager", "deal_desk", "finance", "legal", "executive"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["types"]["volume_discount"].update(max_duration_days=-3),
            "types.volume_discount.max_duration_days: must be a positive integer",
        ),
        (
            lambda d: d["types"]["volume_discount"].update(max_duration_days="long"),
            "types.volume_discount.max_duration_days: must be an integer",
        ),
        (
            lambda d: d["types"]["seat_overage"].pop("label"),
            "types.seat_overage.label: is required",
        ),
        (
            lambda d: d["types"]["seat_overage"].update(colour="red"),
            "types.seat_overage.colour: is not a known field",
        ),
        (
            lambda d: d["risk"]["financial"][0].update(score=9),
            "risk.financial[0].score: must be between 1 and 5",
        ),
        (
            lambda d: d["risk"]["overall"][0].update(level="apocalyptic"),
            "risk.overall[0].level: must be one of 'low', 'medium', 'high' or 'critical'",
        ),
        (
            lambda d: d["tiers"][1].update(approvers=0),
            "tiers[1].approvers: must be a positive integer",
        ),
        (
            lambda d: d["tiers"][1].update(name="Deal Desk"),
            "tiers[1].name: must be a lower-case name (letters, digits, _)",
        ),
        (lambda d: d.update(tiers=[]), "tiers: must define at least one approval tier"),
        (lambda d: d.update(types={}), "types: must define at least one exception type"),
        (
            lambda d: d["tiers"][2].update(name="manager"),
            "tiers[2].name: 'manager' is defined twice",
        ),
        (
            lambda d: d["tiers"][0].update(role="auditor"),
            "tiers[0].role: 'auditor' is not an approver role",
        ),
        (
            lambda d: d["triggers"][0].update(add_tiers=["board"]),
            "triggers[0].add_tiers: no tier named 'board'",
        ),
        (
            lambda d: d["types"]["term_extension"].update(initiators=["intern"]),
            "types.term_extension.initiators: no role named 'intern'",
        ),
        (
            lambda d: d["types"]["term_extension"].update(review_window_days=400),
            "types.term_extension.review_window_days: must not exceed max_duration_days",
        ),
        (
            lambda d: d["types"]["term_extension"]["required_fields"].append("colour"),
            "types.term_extension.required_fields[4]: 'colour' is not a request field",
        ),
        (
            lambda d: d["termination"].update(roles=["janitor"]),
            "termination.roles: no role named 'janitor'",
        ),
        (
            lambda d: d["reminders"].update(days_before_end=[30, 0]),
            "reminders.days_before_end[1]: must be a positive integer",
        ),
    ],
)
def test_a_broken_policy_is_refused_with_the_place_named(mutate, expected):
    assert expected in problems_of(changed(mutate))


def test_an_expression_that_does_not_parse_is_refused_with_its_position():
    source = changed(lambda d: d["tiers"][1].update(when="request.duration_days > "))
    (problem,) = problems_of(source)
    assert problem.startswith("tiers[1].when: does not parse at line 1, column 25: Syntax error")


def test_a_misspelt_field_is_found_when_the_policy_is_checked_not_on_a_live_request():
    source = changed(lambda d: d["risk"]["operational"][0].update(when="request.scope.sets >= 1"))
    (problem,) = problems_of(source)
    assert problem.startswith("risk.operational[0].when:")
    assert "sets" in problem


def test_a_condition_must_be_true_or_false():
    source = changed(lambda d: d["tiers"][4].update(when="request.scope.seats"))
    assert problems_of(source) == ["tiers[4].when: must be true or false, but is int"]


def test_yaml_syntax_errors_name_line_and_column():
    (problem,) = problems_of("name: x\ntypes: [\n")
    assert problem.startswith("line 3, column 1: not valid YAML")


def test_a_document_that_is_not_a_mapping_is_refused():
    assert problems_of("- just a list") == [
        "document: must be a mapping with name, types and tiers"
    ]


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('id')",
        "open('/etc/passwd') != ''",
        "false && exec('1')",
        "request.products.exists(p, getattr(p, 'x'))",
    ],
)
def test_expressions_that_call_anything_but_cel_functions_are_refused(source):
    with pytest.raises(ExpressionError, match="calls unknown function"):
        compile_expression(source)


def test_expressions_never_reach_python_objects_only_plain_data():
    class Host:
        secret = "x"

    expression = compile_expression("request.secret == 'x'")
    with pytest.raises(ValueError, match="Failed to convert"):
        expression.evaluate(make_context({"request": Host()}))


def test_dunder_attribute_access_on_plain_data_is_refused_by_policy_check():
    policy_source = changed(lambda d: d["tiers"][4].update(when="request.__class__ == 'dict'"))
    (problem,) = problems_of(policy_source)
    assert problem.startswith("tiers[4].when: column 9: request has no field '__class__'")


def test_every_broken_condition_is_reported_at_once():
    def break_two(d):
        d["tiers"][1]["when"] = "request.duration_days > "
        d["risk"]["operational"][0]["when"] = "request.scope.sets >= 1"

    problems = problems_of(changed(break_two))
    assert [p.split(":")[0] for p in problems] == ["tiers[1].when", "risk.operational[0].when"]
