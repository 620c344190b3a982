"""The planner's memo for history-less learners: a memoized path is exactly the path planning
would give, and learners whose inputs differ (features, history, identity in the model) are
planned for themselves. Real store, real LightFM training on the small seeded world."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import timedelta

from recommender.domain.learner import Learner
from recommender.domain.profile import SkillState
from recommender.service.app import App
from recommender.service.paths import PathRequest, Planner, model_key
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0
from tests.service.test_models import CONFIG, load_world


def fresh_plan(planner: Planner, learner: Learner, states: list[SkillState] | None = None) -> object:
    """Planning with an empty memo: the reference a memo hit must equal."""
    options = planner.options_for(learner, PathRequest(learner.learner_id, 6))
    clone = pickle.loads(pickle.dumps(planner))  # a planner's memo is never pickled
    assert len(clone._memo) == 0
    return clone.plan(model_key(DEFAULT_TENANT, learner.learner_id), learner, states or [], options, T0)


def plan(planner: Planner, learner: Learner, states: list[SkillState] | None = None, at: object = T0) -> object:
    options = planner.options_for(learner, PathRequest(learner.learner_id, 6))
    return planner.plan(model_key(DEFAULT_TENANT, learner.learner_id), learner, states or [], options, at)  # type: ignore[arg-type]


def test_memoized_paths_equal_planned_paths(app: App) -> None:
    load_world(app, 120)
    app.training.train(CONFIG)
    planner = app.paths.planner()
    assert planner.model is not None
    cohort = [
        Learner(f"new{i}", cohort_id=f"c{i % 3}", country="AA" if i % 2 else "BB", languages=("en",),
                target_role_id="r", weekly_minutes=60 * i, attributes={"track": "x" if i % 4 < 2 else "y"})
        for i in range(24)
    ]  # fmt: skip
    for learner in cohort:
        assert plan(planner, learner) == fresh_plan(planner, learner)
    # 4 distinct inputs (country x attribute); cohort, weekly minutes and id do not count
    assert len(planner._memo) == 4
    later = T0 + timedelta(hours=3)
    again = plan(planner, cohort[5], at=later)
    assert again.generated_at == later and again.learner_id == "new5"  # type: ignore[attr-defined]
    assert replace(again, generated_at=T0) == fresh_plan(planner, cohort[5])  # type: ignore[type-var]


def test_history_and_identity_are_never_memoized(app: App) -> None:
    load_world(app, 120)
    app.training.train(CONFIG)
    planner = app.paths.planner()
    known = app.store.get_learner(DEFAULT_TENANT, "l0000")
    assert known is not None and planner.model is not None
    known = replace(known, target_role_id="r")
    assert planner.model.knows_learner(model_key(DEFAULT_TENANT, "l0000"))
    plan(planner, known)
    assert len(planner._memo) == 0, "a learner the model knows by identity is planned for themself"
    stranger = Learner("stranger", country=known.country, languages=known.languages, target_role_id="r")
    states = [SkillState("x", 0.9, 3, T0 - timedelta(days=1))]
    with_history = plan(planner, stranger, states)
    assert len(planner._memo) == 0, "a learner with a history is planned for themself"
    assert with_history == fresh_plan(planner, stranger, states)
    assert plan(planner, stranger) != with_history
