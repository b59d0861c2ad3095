"""The policy read as sentences."""

from pathlib import Path

from waiverdesk.core.explain import condition, faq
from waiverdesk.core.policy import load_policy

DEFAULT = Path(__file__).parents[3] / "policies" / "default.yaml"


def test_simple_conditions_read_as_sentences():
    assert condition("true") == "always"
    assert (
        condition("request.financials.concession >= 25000.0") == "the concession is 25,000 or more"
    )
    assert (
        condition("request.type == 'volume_discount' || request.duration_days > 90")
        == "the type is volume discount, or the duration in days is more than 90"
    )
    assert condition("'Security' in request.families") == "the product families include Security"
    assert (
        condition("risk.compliance >= 4 && request.duration_days > request.review_window_days")
        == "the compliance risk is 4 or more and the duration in days is more than "
        "the type's review window"
    )


def test_a_condition_beyond_the_simple_forms_is_left_to_its_text():
    assert condition("size(request.products) >= 4") is None
    assert condition("request.unknown_fact > 1") is None


def test_the_faq_answers_from_the_policy_itself():
    document = load_policy(DEFAULT.read_text()).document
    answers = dict(faq(document))
    assert (
        "Sales manager (1 approver, within 24 hours) when always"
        in answers["Who approves my request?"]
    )
    assert (
        "30, 7, 1 days before the end" in answers["When will I be reminded that an exception ends?"]
    )
    assert (
        "Attach: business impact analysis"
        in answers["What does a volume discount not normally offered request need?"]
    )


def test_what_changed_between_two_versions_is_said_in_plain_language():
    from waiverdesk.core.explain import changes

    text = DEFAULT.read_text()
    old = load_policy(text).document
    new = load_policy(
        text.replace("max_duration_days: 730", "max_duration_days: 365")
        .replace("approvers: 1\n    sla_hours: 72", "approvers: 2\n    sla_hours: 72", 1)
        .replace("  every_days: 90\n", "  every_days: 60\n")
    ).document
    said = changes(old, new)
    assert len(said) == 3
    assert any(s.startswith("Volume discount") and "max duration days is now 365 (was 730)" in s
               for s in said)  # fmt: skip
    assert "Finance: approvers is now 2 (was 1)." in said
    assert "reviews every days is now 60 (was 90)." in said
    assert changes(old, old) == []
