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
from recommender.service.paths import PathRequest, model_key, plan_cohort
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


def test_batch_paths_of_stored_learners_count_their_studied_modules(tiny_app: App) -> None:
    """GeneratePaths (plan_cohort) plans a stored learner from the same record as RecommendPath:
    states and studied modules; without the studied module, welding-101 would stay blocked."""
    ana = Learner("ana", languages=("en",), target_role_id="welder")
    tiny_app.learners.upsert(DEFAULT_TENANT, ana)
    for i in range(3):  # studied three times, still not mastered: a check, then study on
        low = AssessmentEvent(f"e{i}", "ana", "safety-101", score=0.1, occurred_at=T0 - timedelta(hours=3 - i))
        tiny_app.learners.record_batch(DEFAULT_TENANT, [low])
    single = tiny_app.paths.recommend(DEFAULT_TENANT, PathRequest("ana", max_steps=4))
    batch = list(plan_cohort(tiny_app.paths, DEFAULT_TENANT, [ana], max_steps=4, locale="", persist=False,
                             learner_service=tiny_app.learners))  # fmt: skip
    assert batch[0].path == single
    planner = tiny_app.paths.planner()
    record = tiny_app.store.get_learner_record(DEFAULT_TENANT, "ana")
    assert record is not None and record.studied_module_ids == frozenset({"safety-101"})
    options = planner.options_for(ana, PathRequest("ana", max_steps=4))
    unstudied = planner.plan(model_key(DEFAULT_TENANT, "ana"), ana, record.states, options, tiny_app.paths.now())
    assert [s.module_id for s in unstudied.steps] != [s.module_id for s in single.steps]
