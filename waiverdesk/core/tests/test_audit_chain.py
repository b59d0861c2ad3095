"""The chain's canonical text and verification, without a database."""

import json

from hypothesis import given
from hypothesis import strategies as st

from waiverdesk.core.audit_chain import GENESIS, canonical, entry_hash, verify_chain


@given(st.lists(st.text(), min_size=5, max_size=5), st.integers(1, 10**12))
def test_the_canonical_text_is_the_json_array_of_the_fields(texts, seq):
    actor, action, object_type, object_ref, at = texts
    text = canonical(seq, at, actor, action, object_type, object_ref, GENESIS, '{"a":1}')
    assert json.loads(text) == [seq, at, actor, action, object_type, object_ref, GENESIS, {"a": 1}]
    assert text == json.dumps(
        [seq, at, actor, action, object_type, object_ref, GENESIS, {"a": 1}],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def chain(n: int) -> list[tuple]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = (
            seq,
            "2027-01-04T09:00:00.000000Z",
            "rita",
            "waiver.created",
            "waiver",
            f"WVR-2027-{seq:05d}",
            prev,
            "{}",
        )
        text = canonical(*fields)
        prev = entry_hash(text)
        rows.append((*fields, text, prev))
    return rows


def test_a_good_chain_verifies_and_reports_its_head():
    rows = chain(5)
    result = verify_chain(rows, {3: rows[2][-1]})
    assert (result.ok, result.length, result.head) == (True, 5, rows[-1][-1])


def test_entries_swapped_in_order_are_found():
    rows = chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    assert verify_chain(rows).first_bad_seq == 2


def test_a_checkpoint_beyond_the_end_means_entries_were_removed():
    rows = chain(5)
    result = verify_chain(rows[:3], {5: rows[4][-1]})
    assert not result.ok and result.first_bad_seq == 4
