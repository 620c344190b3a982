"""The fast constructors (skill_state for the store and the tracer, assessment_event for ingest)
build what the dataclasses' own constructors do."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommender.domain.assessment import AssessmentEvent, ResultKind, assessment_event
from recommender.domain.profile import SkillState, skill_state

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(st.text(max_size=8), st.floats(0, 1), st.integers(0, 10**6), moments, st.integers(0, 100), st.booleans())
def test_the_same_state_as_the_constructor(
    skill: str, mastery: float, attempts: int, at: datetime, studies: int, studied: bool
) -> None:
    fast = skill_state(skill, mastery, attempts, at, studies, studied)
    slow = SkillState(skill, mastery, attempts, at, studies, studied)
    assert type(fast) is SkillState
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)


def test_still_frozen() -> None:
    state = skill_state("safety", 0.5, 1, datetime(2026, 1, 1, tzinfo=UTC), 0)
    with pytest.raises(FrozenInstanceError):
        state.mastery = 1.0  # type: ignore[misc]


@given(
    st.text(max_size=8),
    st.floats(allow_nan=False),
    moments,
    st.lists(st.text(max_size=4), max_size=3).map(tuple),
    st.booleans(),
    st.sampled_from(list(ResultKind)),
)
def test_the_same_event_as_the_constructor(
    event_id: str, score: float, at: datetime, skills: tuple[str, ...], sent: bool, kind: ResultKind
) -> None:
    fast = assessment_event(event_id, "ana", "safety-101", score, at, skills, "item", 12.5, sent, kind)
    slow = AssessmentEvent(event_id, "ana", "safety-101", score, at, skills, "item", 12.5, sent, kind)
    assert type(fast) is AssessmentEvent
    assert fast == slow and hash(fast) == hash(slow) and fast.fingerprint() == slow.fingerprint()
