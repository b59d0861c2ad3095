"""The state table and the date rules, with a fixed clock."""

from datetime import date

import pytest

from waiverdesk.core import lifecycle
from waiverdesk.core.lifecycle import TERMINAL, TRANSITIONS, IllegalTransition, Status


def test_terminal_states_allow_no_action():
    for status in TERMINAL:
        assert lifecycle.allowed_actions(status) == []


def test_every_state_but_the_terminal_ones_can_be_left():
    for status in set(Status) - TERMINAL:
        assert any(
            TRANSITIONS[a][1] not in (None, status) for a in lifecycle.allowed_actions(status)
        ), status


def test_a_draft_can_be_submitted_but_not_approved():
    assert lifecycle.next_status("draft", "submit") == Status.SUBMITTED
    with pytest.raises(IllegalTransition, match="cannot approve final a waiver that is draft"):
        lifecycle.next_status("draft", "approve_final")


def test_editing_under_review_goes_back_to_submitted():
    assert lifecycle.next_status("in_review", "edit_under_review") == Status.SUBMITTED


@pytest.mark.parametrize(
    ("status", "today", "action"),
    [
        ("approved", date(2027, 1, 31), None),
        ("approved", date(2027, 2, 1), "activate"),
        ("active", date(2027, 3, 31), None),  # the end date is the last day in force
        ("active", date(2027, 4, 1), "expire"),
        ("approved", date(2027, 4, 1), "expire"),  # never activated, already over
        ("in_review", date(2027, 3, 31), None),
        ("in_review", date(2027, 4, 1), "lapse"),  # nobody decided it by its end
        ("changes_requested", date(2027, 4, 1), "lapse"),
        ("draft", date(2027, 4, 1), None),  # never submitted: nothing to lapse
        ("expired", date(2027, 5, 1), None),
    ],
)
def test_the_clock_activates_on_the_start_and_expires_after_the_end(status, today, action):
    assert lifecycle.due_clock_action(status, date(2027, 2, 1), date(2027, 3, 31), today) == action


@pytest.mark.parametrize(("today", "action"), [(date(2027, 2, 10), None),
                                               (date(2027, 2, 11), "lapse")])  # fmt: skip
def test_a_type_may_lapse_its_undecided_requests_days_after_their_start(today, action):
    start, end = date(2027, 2, 1), date(2027, 3, 31)
    assert lifecycle.due_clock_action("submitted", start, end, today, 10) == action
    assert lifecycle.due_clock_action("approved", start, end, today, 10) == "activate"


def test_reminders_go_out_at_the_policy_offsets_before_the_end():
    assert lifecycle.reminder_dates(date(2027, 3, 31), [30, 7, 1, 7]) == [
        date(2027, 3, 1),
        date(2027, 3, 24),
        date(2027, 3, 30),
    ]
