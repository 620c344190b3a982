"""The planner's memo for history-less learners: a memoized path is exactly the path planning
would give, and learners whose inputs differ (features, history, identity in the model) are
planned for themselves. Real store, real LightFM training on the small seeded world."""

from __future__ import annotations

import itertools
import pickle
from dataclasses import replace
from datetime import timedelta

from recommender.domain.catalog import Module, SkillWeight
from recommender.domain.learner import Learner
from recommender.domain.profile import SkillState
from recommender.service.app import App
from recommender.service.recommend import PathRequest, Planner, model_key
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
    # 2 distinct inputs: the model knows the countries but never saw the attribute `track` (nor
    # role "r"), so only the country splits the memo; cohort, weekly minutes and id do not count
    assert len(planner._memo) == 2
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


def test_every_learner_field_is_either_in_the_memo_key_or_changes_nothing(app: App) -> None:
    """Learners varying in every field, in combinations: each memoized path equals a fresh plan.
    A field a future planner reads but the key forgets makes this fail."""
    load_world(app, 120)
    # a Chinese-only module for HSK >= 3 that teaches both role skills: the HSK level matters
    chinese = Module("zh-xy", skills=(SkillWeight("x"), SkillWeight("y")), languages=("zh",), difficulty=0.3,
                     min_chinese_level=3)  # fmt: skip
    app.catalogs.upsert([], [chinese], [], replace=False)
    app.training.train(CONFIG)
    planner = app.paths.planner()
    variants: dict[str, list[object]] = {
        "country": ["AA", "ZZ"],
        "languages": [("en",), ("zh", "en"), ("en", "zh")],
        "chinese_level": [0, 2, 3],  # 2 and 3: both unknown to the model, only 3 may take zh-xy
        "attributes": [{}, {"email": "a@b.c"}],
        "program": ["", "p1"],
        "weekly_minutes": [0, 600],
        "cohort_id": ["", "c9"],
    }
    base = Learner("v", languages=("en",), target_role_id="r")
    learners = [
        replace(base, learner_id=f"v{i}", **dict(zip(variants, values, strict=True)))  # type: ignore[arg-type]
        for i, values in enumerate(itertools.product(*variants.values()))
    ]
    for learner in learners:
        assert plan(planner, learner) == fresh_plan(planner, learner), learner
    assert 1 < len(planner._memo) < len(learners)
    assert any(s.module_id == "zh-xy" for path in planner._memo._paths.values() for s in path.steps)
    # a column the model never saw (a name, an e-mail) does not cost a second plan
    named = [replace(learners[0], learner_id=f"n{i}", attributes={"name": f"Student {i}"}) for i in range(5)]
    before = len(planner._memo)
    for learner in named:
        assert plan(planner, learner) == fresh_plan(planner, learner)
    assert len(planner._memo) <= before + 1


def test_without_a_model_the_memo_keys_on_role_languages_and_level(app: App) -> None:
    load_world(app, 40)
    planner = app.paths.planner()
    assert planner.model is None
    cohort = [
        Learner(f"n{i}", country=f"C{i}", languages=("en",), target_role_id="r", chinese_level=i % 2,
                attributes={"name": str(i)})
        for i in range(10)
    ]  # fmt: skip
    for learner in cohort:
        assert plan(planner, learner) == fresh_plan(planner, learner)
    assert len(planner._memo) == 2
