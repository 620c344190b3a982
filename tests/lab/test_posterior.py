"""The particle filter behind the simulator's bayes policy, on the demo world's real catalog."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from lab.posterior import ParticleTracker
from recommender.domain.catalog import build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.service.demo import demo_catalog_path
from recommender.simulation.truth import (
    HiddenLearner,
    HiddenWorld,
    attempt,
    forget,
    make_world,
    role_syllabus,
    sample_learners,
)


def _world() -> HiddenWorld:
    doc = json.loads(demo_catalog_path().read_text(encoding="utf-8-sig"))
    catalog = build_catalog(*catalog_parts_from_dict(doc))
    return make_world(catalog, np.random.default_rng(4))


def test_the_prior_follows_what_the_learner_declared() -> None:
    world = _world()
    catalog = world.catalog
    who = sample_learners(catalog, 1, np.random.default_rng(2))[0].learner
    role = catalog.roles[who.target_role_id]
    learner = replace(who, chinese_level=3, attributes={"experience_years": "5"})
    tracker = ParticleTracker.start(world, learner, np.random.default_rng(1), particles=4000)
    low = tracker.mastery[:, [catalog.skill_index[s] for s in ("zh-hsk1", "zh-hsk3")]]
    assert (low >= 0.85).all(), "HSK 3 declared: the Chinese of levels 1-3 is known"
    experienced = tracker.mastery[:, catalog.skill_index[role.requirements[0].skill_id]]
    assert 0.35 < experienced.mean() < 0.55 and experienced.max() > 0.8, "five years: up to 0.9, uniformly"
    assert tracker.estimate()[catalog.skill_index["zh-hsk4"]] < 0.2, "not declared: the population's low prior"


def test_scores_reveal_the_learners_ability() -> None:
    """Followed along their syllabus, learners 1.5 sd from the mean ability are found much closer
    than the prior's 0. (Their mastery, on the other hand, is tracked about as well as the dynamics
    alone track it: a module score says little about mastery; see the README's simulator section.)"""
    world = _world()
    catalog = world.catalog
    ability_errors = []
    for i, drawn in enumerate(sample_learners(catalog, 8, np.random.default_rng(9))):
        hidden = replace(drawn, ability=(-1.5, 1.5)[i % 2])
        rng = np.random.default_rng([9, i])
        tracker = ParticleTracker.start(world, hidden.learner, np.random.default_rng([9, i, 1]))
        mastery = hidden.initial_mastery.copy()
        for module_id in role_syllabus(catalog, hidden.learner.target_role_id, hidden.learner)[:25]:
            mastery = forget(mastery, 1.0, hidden.forget_per_day)
            score, mastery = attempt(world, hidden, mastery, module_id, rng)
            tracker.forget(1.0)
            tracker.studied(module_id, score)
        ability_errors.append(abs(tracker.ability_estimate() - hidden.ability))
    assert np.mean(ability_errors) < 0.75, f"half the prior's error or better: {ability_errors}"


def test_check_answers_move_the_skill_toward_the_level_they_reveal() -> None:
    world = _world()
    catalog = world.catalog
    who: HiddenLearner = sample_learners(catalog, 1, np.random.default_rng(2))[0]
    skill = catalog.skill_index[catalog.roles[who.learner.target_role_id].requirements[0].skill_id]
    start = ParticleTracker.start(world, who.learner, np.random.default_rng(1)).estimate()[skill]
    failed = ParticleTracker.start(world, who.learner, np.random.default_rng(1))
    failed.mastery[:, skill] = np.linspace(0.3, 0.9, len(failed.mastery))  # an uncertain skill
    passed = ParticleTracker(world, failed.ability, failed.learn_rate, failed.forget_per_day,
                             failed.mastery.copy(), failed.log_weight.copy(), np.random.default_rng(2))  # fmt: skip
    failed.checked(skill, 0.7, [False] * 10)
    passed.checked(skill, 0.7, [True] * 10)
    assert failed.estimate()[skill] < 0.6 < passed.estimate()[skill]
    assert start < 0.5, "the population prior of a role skill is low"
    for tracker in (failed, passed):
        assert ((tracker.mastery >= 0) & (tracker.mastery <= 1)).all()
        assert np.isclose(tracker.weights().sum(), 1.0)
