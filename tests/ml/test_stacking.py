"""luban's stacking weights: fitted on outcomes none of its inputs saw, and used alike for the
model evaluate trains and for an earlier model it is compared with."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommender.ml.data import TrainingData
from recommender.ml.evaluate import _Scorer, evaluate, make_split, score_model, stacking_inputs
from recommender.ml.train import PASS_SCORE, TrainConfig, fit_knowledge_tracing, train_hybrid
from tests.ml.world import world

CONFIG = TrainConfig(seed=3, epochs=6, components=8)


def flipped(data: TrainingData, rows: np.ndarray) -> TrainingData:
    """The same events with the outcomes of `rows` turned over."""
    score = data.events.score.copy()
    score[rows] = np.where(score[rows] >= PASS_SCORE, 0.0, 1.0)
    return replace(data, events=replace(data.events, score=score))


def first_of_each_learner(table_learner: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Of `rows` (a mask), each learner's earliest one."""
    picked = np.flatnonzero(rows)
    _, first = np.unique(table_learner[picked], return_index=True)
    out = np.zeros_like(rows)
    out[picked[first]] = True
    return out


@pytest.mark.parametrize("split_name", ["temporal", "cold"])
def test_the_weights_inputs_never_see_the_outcomes_they_are_fitted_on(split_name: str) -> None:
    data, _ = world(120, seed=4)
    inputs = stacking_inputs(data, split_name, CONFIG)
    assert set(inputs) == ({"warm"} if split_name == "temporal" else {"warm", "cold"})
    for group, (x, labels, rows) in inputs.items():
        # every outcome the weights are fitted on turned over: a learner's first such row reads
        # nothing that changed (later rows read the earlier ones' results, as serving does)
        again = stacking_inputs(flipped(data, rows), split_name, CONFIG)[group]
        assert np.array_equal(again[2], rows) and np.array_equal(again[1], ~labels)
        first = first_of_each_learner(data.events.learner, rows)[rows]
        assert first.sum() >= 20
        np.testing.assert_array_equal(again[0][first], x[first])
        # each learner's last such outcome turned over: no row's inputs change
        last = first_of_each_learner(data.events.learner[::-1], rows[::-1])[::-1]
        np.testing.assert_array_equal(stacking_inputs(flipped(data, last), split_name, CONFIG)[group][0], x)


def test_inputs_read_on_the_training_events_themselves_would_see_them() -> None:
    """Why the weights are not fitted on the training events: there the factor model's logit was
    fitted on the very outcomes it is then asked about."""
    data, _ = world(120, seed=4)
    split = make_split("temporal", data.events)

    def in_sample(d: TrainingData) -> np.ndarray:
        train_table = d.events.subset(split.train)
        bkt, masteries = fit_knowledge_tracing(train_table, d.catalog)
        model = train_hybrid(replace(d, events=train_table), replace(CONFIG, fit_blend=False), bkt=bkt,
                             masteries=masteries)  # fmt: skip
        scorer = _Scorer(d, split, train_table, bkt, masteries)
        return scorer.stack_features(model, split.train, cold=False, leave_one_out=True)

    rows = first_of_each_learner(data.events.learner, split.train)
    before, after = in_sample(data)[rows[split.train]], in_sample(flipped(data, rows))[rows[split.train]]
    factor_logit = 2  # the column of the factor model's logit
    assert not np.allclose(before[:, factor_logit], after[:, factor_logit])


def test_evaluation_reports_its_weights_and_scores_an_earlier_model_with_them() -> None:
    data, _ = world(160, seed=1)
    split = make_split("cold", data.events, seed=2)
    evaluation, model = evaluate(data, split, CONFIG)
    assert evaluation.stacking is not None
    assert evaluation.stacking.warm is not None and evaluation.stacking.cold is not None
    doc = evaluation.to_json()["stacking"]
    assert set(doc["weights"]) == {"warm", "cold"} and "cold split of the training events" in doc["source"]
    again = score_model(data, split, model, evaluation.stacking)
    assert again["auc"] == pytest.approx(evaluation.models["luban"]["auc"], abs=1e-9)
    assert again["rmse"] == pytest.approx(evaluation.models["luban"]["rmse"], abs=1e-9)
