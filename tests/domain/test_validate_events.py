"""A batch's validation (validate_events, the ingest path) gives, result by result, exactly what
validate_event gives for each result alone: the same validated event, or the same problems."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.domain.assessment import AssessmentEvent, ResultKind, validate_event, validate_events
from recommender.domain.catalog import build_catalog
from recommender.domain.ids import all_ids, is_id
from recommender.errors import InvalidInput
from tests.conftest import tiny_catalog

CATALOG = build_catalog(*tiny_catalog())
NOW = datetime(2026, 6, 1, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)


def mostly(good: list[object], bad: list[object]) -> st.SearchStrategy[object]:
    """Valid values most of the time (a batch's results are mostly fine), each bad one sometimes."""
    return st.sampled_from(good * (6 * len(bad) // len(good) + 1) + bad)


ids = mostly(
    ["ana", "bo", "e-1", "e-2", "ok.id:7@x", "x" * 128], ["", "-bad", "x" * 129, "a b", "e\x00", "a\nb", "a\n"]
)
modules = mostly(["safety-101", "welding-301", "marketing-101"], ["nope-101", "", "bad id"])
skills = mostly([()], [("safety",), ("welding", "welding", "inspection"), ("unknown",), ("bad id",)])
scores = mostly([0.0, 0.5, 1.0], [-0.1, 1.5, math.nan, math.inf])
durations = mostly([0.0, 30.0, 7 * 24 * 3600.0], [-1.0, 7 * 24 * 3600.0 + 1, math.nan])
moments = mostly(
    [NOW, NOW + TOLERANCE, datetime(1990, 1, 1, tzinfo=UTC), NOW - timedelta(days=400)],
    [NOW + TOLERANCE + timedelta(microseconds=1), datetime(1989, 12, 31, 23, 59, 59, tzinfo=UTC)],
)

events = st.builds(
    AssessmentEvent,
    event_id=ids,
    learner_id=ids,
    module_id=modules,
    score=scores,
    occurred_at=moments,
    skill_ids=skills,
    item_id=mostly(["", "item-1", "ana"], ["bad item", "-x"]),
    duration_seconds=durations,
    occurred_at_sent=st.booleans(),
    kind=st.sampled_from(list(ResultKind)),
)


def one_by_one(batch: list[AssessmentEvent]) -> list[object]:
    out: list[object] = []
    for e in batch:
        try:
            out.append(validate_event(e, CATALOG, NOW, TOLERANCE))
        except InvalidInput as exc:
            out.append(exc.violations)
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=30))
def test_a_batch_validates_as_its_results_do_one_by_one(batch: list[AssessmentEvent]) -> None:
    found = [
        f.violations if isinstance(f, InvalidInput) else f for f in validate_events(batch, CATALOG, NOW, TOLERANCE)
    ]
    assert found == one_by_one(batch)


def test_the_common_case_takes_the_module_skills() -> None:
    e = AssessmentEvent("e-1", "ana", "welding-301", 1.0, NOW)
    (found,) = validate_events([e, e], CATALOG, NOW, TOLERANCE)[:1]
    assert isinstance(found, AssessmentEvent)
    assert found.skill_ids == ("welding", "inspection")
    assert found == validate_event(e, CATALOG, NOW, TOLERANCE)


@given(st.lists(st.one_of(ids, st.text(max_size=140), st.text("ab\n-.", max_size=6)), max_size=8))
def test_all_ids_checks_at_once_what_is_id_checks_one_by_one(values: list[str]) -> None:
    assert all_ids(values) == all(is_id(v) for v in values)
