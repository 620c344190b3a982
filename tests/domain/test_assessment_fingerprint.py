"""The duplicate check's payload identity (issue #22, defect 1): a result's time counts only when
the client sent it; a receive time the server filled in never makes a retry a conflict."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from recommender.domain.assessment import AssessmentEvent, ResultKind

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def event(at: datetime, *, sent: bool, score: float = 1.0) -> AssessmentEvent:
    return AssessmentEvent("e1", "ana", "welding-101", score, at, ("welding",), occurred_at_sent=sent)


@given(moments, moments)
def test_a_filled_in_time_does_not_change_the_fingerprint(first: datetime, retry: datetime) -> None:
    assert event(first, sent=False).fingerprint() == event(retry, sent=False).fingerprint()


@given(moments, moments)
def test_a_sent_time_is_part_of_the_payload(first: datetime, other: datetime) -> None:
    same = event(first, sent=True).fingerprint() == event(other, sent=True).fingerprint()
    assert same == (first == other)


@given(moments, st.floats(0, 1))
def test_sent_and_unsent_times_differ_and_the_rest_still_counts(at: datetime, score: float) -> None:
    untimed = event(at, sent=False)
    assert untimed.fingerprint() != event(at, sent=True).fingerprint(), "a time sent later is another payload"
    changed = replace(untimed, score=score)
    assert (changed.fingerprint() == untimed.fingerprint()) == (score == 1.0)


def test_fingerprints_stay_what_they_were_stored_as() -> None:
    """Stored fingerprints are compared with every replay: the text they hash never changes."""
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    practice = AssessmentEvent(
        "e1", "ana", "welding-101", 0.75, at, ("welding", "safety"), "q7", 42.5, kind=ResultKind.PRACTICE
    )
    untimed = AssessmentEvent(
        "e2", "bob", "safety-101", 1, datetime(2026, 3, 1, tzinfo=UTC), ("safety",), occurred_at_sent=False
    )
    bare = AssessmentEvent("e3", "chen", "safety-101", 0.1, datetime(1999, 3, 1, tzinfo=UTC), ())
    assert practice.fingerprint() == "4570087dc979948562bfb7ba29e761002dad0b62"
    assert untimed.fingerprint() == "7c9ec63860a28d18abd43a3ea7cd45cbb3938276"
    assert bare.fingerprint() == "577b578c20f6485b9f35aef644e246894e8f6b09"
