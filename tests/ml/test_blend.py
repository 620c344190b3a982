"""The planner's success blend: fitted on held-out learners, each source weighed by what it
predicts there; served as trained, and half and half for artifacts that carry none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recommender.domain.assessment import AssessmentEvent, ResultKind
from recommender.domain.catalog import Module, Skill, SkillRequirement, SkillWeight, TargetRole, build_catalog
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath
from recommender.kt.bkt import BKTModel, apply_result, mastery_now
from recommender.kt.fit import ParamArrays, masteries_before
from recommender.ml.blend import MIN_HELD_OUT_RESULTS, SuccessBlend, fit_blend, fit_logistic, knowledge_logits
from recommender.ml.data import build_event_table
from recommender.ml.model import HybridModel
from recommender.ml.train import TrainConfig, train_hybrid
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import LearnerState, ModelOpinion, PlanInput, PlanOptions, plan_paths
from tests.ml.world import world

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _logistic_labels(rng: np.random.Generator, z: np.ndarray) -> np.ndarray:
    return np.asarray(rng.random(len(z)) < 1.0 / (1.0 + np.exp(-z)))


def test_the_fit_recovers_how_much_each_source_predicts() -> None:
    rng = np.random.default_rng(4)
    knowledge, model = rng.normal(0, 1.5, 20_000), rng.normal(0, 1.5, 20_000)
    blend = fit_blend(knowledge, model, _logistic_labels(rng, 1.2 * knowledge + 0.3 * model - 0.4))
    assert blend.knowledge == pytest.approx(1.2, abs=0.08)
    assert blend.model == pytest.approx(0.3, abs=0.06)
    assert blend.intercept == pytest.approx(-0.4, abs=0.06)
    assert blend.source.startswith("fitted on 20000")


def test_a_source_that_predicts_backwards_is_left_out() -> None:
    rng = np.random.default_rng(5)
    knowledge, model = rng.normal(0, 1.5, 5000), rng.normal(0, 1.5, 5000)
    # what the model says raises success lowers it, beside what knowledge tracing says
    blend = fit_blend(knowledge, model, _logistic_labels(rng, knowledge - 0.8 * model))
    assert blend.model == 0.0
    assert blend.knowledge > 0.5


def test_knowledge_tracing_keeps_the_default_weight_and_the_rest_is_fitted_beside_it() -> None:
    """A fit in which knowledge tracing predicts backwards would pitch modules by the model alone,
    whatever the learner's own results: knowledge tracing keeps the default's weight, and the
    model's weight and the intercept are what best predicts the results beside it."""
    rng = np.random.default_rng(9)
    knowledge, model = rng.normal(0, 1.5, 20_000), rng.normal(0, 1.5, 20_000)
    succeeded = _logistic_labels(rng, 0.5 * knowledge + 1.1 * model + 1.5)
    succeeded &= rng.random(len(knowledge)) > 0.6 / (1.0 + np.exp(-2.0 * knowledge))  # the backwards part
    blend = fit_blend(knowledge, model, succeeded)
    assert blend.knowledge == SuccessBlend().knowledge
    assert blend.model > 0.5 and "held at the default" in blend.source
    free = fit_logistic(np.column_stack([np.ones(len(knowledge)), knowledge, model]), succeeded)
    assert free[1] < 0, "the unconstrained fit weighs knowledge tracing backwards"
    rival = SuccessBlend(0.5, 0.5, 0.0)

    def log_likelihood(b: SuccessBlend) -> float:
        p = 1.0 / (1.0 + np.exp(-(b.knowledge * knowledge + b.model * model + b.intercept)))
        return float(np.where(succeeded, np.log(p), np.log(1.0 - p)).sum())

    assert log_likelihood(blend) > log_likelihood(rival), "better than the unfitted default"
    # both predict backwards: knowledge tracing held, the model left out, the intercept fitted
    backwards_too = fit_blend(knowledge, -model, _logistic_labels(rng, 1.0 - 0.8 * knowledge + 0.8 * model))
    assert (backwards_too.knowledge, backwards_too.model) == (SuccessBlend().knowledge, 0.0)


def test_too_few_results_or_one_outcome_keep_the_default() -> None:
    rng = np.random.default_rng(6)
    few = MIN_HELD_OUT_RESULTS - 1
    assert fit_blend(rng.normal(size=few), rng.normal(size=few), rng.random(few) < 0.5).source.startswith("default")
    many = 5 * MIN_HELD_OUT_RESULTS
    one_outcome = fit_blend(rng.normal(size=many), rng.normal(size=many), np.ones(many, dtype=bool))
    assert (one_outcome.knowledge, one_outcome.model, one_outcome.intercept) == (0.5, 0.5, 0.0)


def test_the_blend_round_trips_through_the_model_meta_and_defaults_for_older_artifacts() -> None:
    blend = SuccessBlend(0.9, 0.2, -0.1, "fitted on 1234 held-out module results")
    assert SuccessBlend.from_meta({"success_blend": blend.to_meta()}) == blend
    assert SuccessBlend.from_meta({}) == SuccessBlend()


@pytest.fixture(scope="module")
def trained() -> HybridModel:
    data, _ = world(300, seed=2)
    return train_hybrid(data, TrainConfig(seed=3, epochs=10, components=8), version="blend-v1")


def test_training_fits_the_blend_on_held_out_learners(trained: HybridModel) -> None:
    """The test world's outcomes follow the learner's country, which the factor model reads and
    knowledge tracing cannot know before a learner's first result: the model earns weight."""
    blend = trained.blend
    assert blend.source.startswith("fitted on"), blend
    assert blend.model > 0.3


def test_knowledge_logits_are_the_planners_reading_before_the_study() -> None:
    """A first study of a module: the prior through the module's emissions, shifted by its
    difficulty; a second: the mastery the first result left (forgetting applied), not yet the
    second study's own learning step."""
    modules = [Module("m", skills=(SkillWeight("s", 1.0),), languages=("en",), difficulty=0.8)]
    catalog = build_catalog([Skill("s")], modules, [TargetRole("r", requirements=(SkillRequirement("s", 0.8),))])
    events = [
        AssessmentEvent("e1", "a", "m", 0.2, T0, ("s",), kind=ResultKind.MODULE_ASSESSMENT),
        AssessmentEvent("e2", "a", "m", 0.9, T0 + timedelta(days=3), ("s",), kind=ResultKind.MODULE_ASSESSMENT),
    ]
    table = build_event_table(events, catalog)
    params = ParamArrays.constant(1)
    got = knowledge_logits(table, catalog, params)
    p = params.to_model(["s"]).of("s")  # the parameters as training reads them
    after_first = apply_result(None, "s", 0.2, T0, p, kind=ResultKind.MODULE_ASSESSMENT)
    for value, mastery in zip(got, (p.prior, mastery_now(after_first, p, T0 + timedelta(days=3))), strict=True):
        content = mastery * (1 - p.slip) + (1 - mastery) * p.guess
        assert value == pytest.approx(np.log(content / (1 - content)) + 2 * (0.5 - 0.8))
    seqs = table.skill_sequences(catalog.module_skill_weights)
    assert masteries_before(seqs, params)[0] == pytest.approx(p.prior)


def test_a_blend_that_ignores_the_model_plans_as_if_no_model_were_active() -> None:
    data, _ = world(60, seed=3)
    catalog = data.catalog
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    n = len(catalog.skill_ids)
    rng = np.random.default_rng(8)
    role = sorted(catalog.roles)[0]
    states = [LearnerState(Learner(f"l{i}", languages=("en",)), rng.random(n), rng.random(n), np.zeros(n))
              for i in range(12)]  # fmt: skip
    options = PlanOptions(role, ("en",))
    opinion = rng.uniform(0.05, 0.95, len(catalog.module_ids))
    silent = [PlanInput(s, options, ModelOpinion(opinion, "v", 1.0, 0.0, 0.0)) for s in states]
    none = [PlanInput(s, options) for s in states]
    for kernel in (True, False):
        with_silent = plan_paths(arrays, kt, silent, T0, kernel=kernel)
        without = plan_paths(arrays, kt, none, T0, kernel=kernel)
        for a, b in zip(with_silent, without, strict=True):
            assert isinstance(a, LearningPath) and isinstance(b, LearningPath)
            assert [s.module_id for s in a.steps] == [s.module_id for s in b.steps]
            assert [s.expected_success for s in a.steps] == [s.expected_success for s in b.steps]


def test_learners_under_different_blends_are_planned_as_if_alone() -> None:
    """Two models' opinions never share a batch's blend: each learner's path is the one planned
    for them alone."""
    data, _ = world(60, seed=4)
    catalog = data.catalog
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    n = len(catalog.skill_ids)
    rng = np.random.default_rng(10)
    options = PlanOptions(sorted(catalog.roles)[0], ("en",))
    inputs = [
        PlanInput(
            LearnerState(Learner(f"l{i}", languages=("en",)), rng.random(n), rng.random(n), np.zeros(n)),
            options,
            ModelOpinion(rng.uniform(0.05, 0.95, len(catalog.module_ids)), f"v{i % 2}", *blend),
        )
        for i, blend in enumerate([(1.0, 0.0, 0.0), (0.2, 1.5, -1.0)] * 3)
    ]
    together = plan_paths(arrays, kt, inputs, T0)
    for x, path in zip(inputs, together, strict=True):
        alone = plan_paths(arrays, kt, [x], T0)[0]
        assert isinstance(path, LearningPath) and isinstance(alone, LearningPath)
        assert [s.expected_success for s in path.steps] == [s.expected_success for s in alone.steps]
