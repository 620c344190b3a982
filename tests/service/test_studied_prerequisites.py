"""A prerequisite the learner has studied no longer blocks what depends on it, like a module placed
earlier in the same path: the path a learner followed stays valid after a low result.
Real service, real SQLite store (and PostgreSQL in CI)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.learner import Learner
from recommender.errors import PreconditionFailed
from recommender.service.app import App
from recommender.service.paths import PathRequest
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0


def test_a_studied_prerequisite_unblocks_its_dependents(tiny_app: App) -> None:
    tiny_app.learners.upsert(DEFAULT_TENANT, Learner("ana", languages=("en",), target_role_id="welder"))
    request = PathRequest("ana", max_steps=3, exclude_module_ids=("safety-101",))
    with pytest.raises(PreconditionFailed):
        tiny_app.paths.recommend(DEFAULT_TENANT, request)  # safety-101 neither mastered nor studied
    low = AssessmentEvent("e1", "ana", "safety-101", score=0.2, occurred_at=T0 - timedelta(hours=1))
    tiny_app.learners.record_batch(DEFAULT_TENANT, [low])
    profile = tiny_app.learners.profile(DEFAULT_TENANT, "ana")
    assert profile.mastery_of("safety", 1.0) < tiny_app.settings.mastery_threshold, "studied, not mastered"
    path = tiny_app.paths.recommend(DEFAULT_TENANT, request)
    assert path.steps[0].module_id == "welding-101"
    assert [s.module_id for s in path.steps][:2] == ["welding-101", "inspection-101"]


def test_studied_modules_come_from_this_learner_only(tiny_app: App) -> None:
    for learner_id in ("ana", "bo"):
        tiny_app.learners.upsert(DEFAULT_TENANT, Learner(learner_id, languages=("en",), target_role_id="welder"))
    tiny_app.learners.record_batch(
        DEFAULT_TENANT, [AssessmentEvent("e1", "ana", "safety-101", score=0.2, occurred_at=T0 - timedelta(hours=1))]
    )
    request = PathRequest("bo", max_steps=3, exclude_module_ids=("safety-101",))
    with pytest.raises(PreconditionFailed):
        tiny_app.paths.recommend(DEFAULT_TENANT, request)


def test_an_item_or_placement_result_does_not_make_a_module_studied(tiny_app: App) -> None:
    """Only the module's own (module-level) result completes it; a failed placement item on a
    prerequisite says the learner lacks the skill, and must not unlock what needs it."""
    tiny_app.learners.upsert(DEFAULT_TENANT, Learner("ana", languages=("en",), target_role_id="welder"))
    placement = AssessmentEvent(
        "p1", "ana", "safety-101", item_id="placement", score=0.2, occurred_at=T0 - timedelta(hours=1)
    )
    tiny_app.learners.record_batch(DEFAULT_TENANT, [placement])
    request = PathRequest("ana", max_steps=3, exclude_module_ids=("safety-101",))
    with pytest.raises(PreconditionFailed):
        tiny_app.paths.recommend(DEFAULT_TENANT, request)
