"""Leakage-safe evaluation of the hybrid model against baselines on the same split.

Splits (shared with `make bench`, which adds pyBKT through files):
- temporal: each learner's last 20 % of events (by time) is test;
- cold: 20 % of learners are held out entirely (known only by features); the others' last 20 %
  is a warm test set, reported side by side.
Knowledge tracing predicts each test event before updating on it (BKT filtering runs through the
test events in time order); multi-skill problems are single events (collapsed on import).
Ranking: the modules a learner takes in the test period that they had not taken in training.
`luban` stacks the hybrid's components with weights fitted on an inner split of the training
events, made the way the outer split is, by a model trained on the inner split's training part:
each input a weight is fitted on predicts an outcome it never saw, as on the test set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.domain.catalog import Catalog
from recommender.kt.fit import ParamArrays, filter_sequences
from recommender.ml.blend import fit_logistic, knowledge_logits, module_results
from recommender.ml.data import EventTable, TrainingData
from recommender.ml.metrics import auc, expected_calibration_error, ranking_at_k, reliability, rmse
from recommender.ml.model import HybridModel
from recommender.ml.train import PASS_SCORE, TrainConfig, final_masteries, fit_knowledge_tracing, train_hybrid

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
KT_METRICS = ("auc", "rmse", "ece")
RANK_METRICS = ("precision@10", "recall@10", "ndcg@10", "coverage")
MODELS = ("luban", "served", "bkt", "cf_only", "popularity", "random", "syllabus")
SMOOTHING = 5.0


@dataclass(frozen=True)
class Split:
    name: str
    train: BoolArray
    warm_test: BoolArray
    cold_test: BoolArray


def temporal_split(table: EventTable, fraction: float = 0.2) -> Split:
    n = len(table)
    position = np.zeros(n, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, table.learner[1:] != table.learner[:-1]])
    lengths = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, lengths)
    n_test = np.where(lengths >= 2, np.maximum(np.floor(lengths * fraction + 0.5).astype(np.int64), 1), 0)
    test = position >= np.repeat(lengths - n_test, lengths)
    return Split("temporal", ~test, test, np.zeros(n, dtype=bool))


def cold_split(table: EventTable, fraction: float = 0.2, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    n_learners = len(table.learner_ids)
    cold_learners = np.zeros(n_learners, dtype=bool)
    cold_learners[rng.permutation(n_learners)[: round(n_learners * fraction)]] = True
    cold = cold_learners[table.learner]
    warm_part = temporal_split(table, fraction)
    warm_test = warm_part.warm_test & ~cold
    return Split("cold", ~cold & ~warm_test, warm_test, cold)


def make_split(name: str, table: EventTable, seed: int = 0) -> Split:
    if name == "temporal":
        return temporal_split(table)
    if name == "cold":
        return cold_split(table, seed=seed)
    raise ValueError(f"unknown split {name!r}; use temporal or cold")


@dataclass
class Evaluation:
    split: str
    models: dict[str, dict[str, float]]
    warm: dict[str, dict[str, float]] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # the headline test set's reliability bins per model (metrics.reliability): the calibration plot
    calibration: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    # luban's stacking weights (score_model scores an earlier model with the same ones)
    stacking: Stacking | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"split": self.split, "models": _clean(self.models), "counts": self.counts}
        if self.calibration:
            doc["calibration"] = {
                m: [[round(p, 4), round(o, 4), n] for p, o, n in bins] for m, bins in self.calibration.items()
            }
        if self.warm is not None:
            doc["warm"] = {"models": _clean(self.warm)}
        if self.stacking is not None:
            doc["stacking"] = self.stacking.to_json()
        return doc

    def table(self) -> str:
        columns = [*KT_METRICS, *RANK_METRICS]
        title = "cold learners" if self.split == "cold" else "temporal split, last 20 % of each learner"
        out = [_format_table(title, self.models, columns)]
        if self.warm is not None:
            out.append(_format_table("warm learners (same run)", self.warm, columns))
        return "\n\n".join(out)


def _clean(models: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    return {m: {k: round(v, 4) for k, v in vals.items() if not math.isnan(v)} for m, vals in models.items()}


def _format_table(title: str, models: Mapping[str, Mapping[str, float]], columns: list[str]) -> str:
    head = f"{'model':<11}" + "".join(f"{c:>13}" for c in columns)
    lines = [title, head, "-" * len(head)]
    for name, values in models.items():
        cells = "".join(
            f"{values[c]:>13.4f}" if c in values and not math.isnan(values[c]) else f"{'-':>13}" for c in columns
        )
        lines.append(f"{name:<11}{cells}")
    return "\n".join(lines)


Progress = Callable[[str, float], None]


def evaluate(
    data: TrainingData,
    split: Split,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
) -> tuple[Evaluation, HybridModel]:
    """Train on split.train, score every baseline on the same test events; also returns the
    trained model (for promote-if-better comparisons)."""
    report = progress or (lambda _m, _f: None)
    config = config or TrainConfig()
    catalog, table = data.catalog, data.events
    train_table = table.subset(split.train)
    train_data = replace(data, events=train_table)
    report("fitting BKT on the training events", 0.0)
    bkt, masteries = fit_knowledge_tracing(
        train_table, catalog, reset_degenerate=config.reset_degenerate_bkt, learner_ability=config.learner_ability
    )

    def stage(share: float, offset: float) -> Progress:
        return lambda message, done: report(message, offset + share * done)

    model = train_hybrid(train_data, config, bkt=bkt, masteries=masteries, progress=stage(0.35, 0.05))
    cf_model = train_hybrid(
        train_data, replace(config, use_features=False), bkt=bkt, masteries=masteries, progress=stage(0.35, 0.4)
    )
    stacking = fit_stacking(train_data, split.name, config, progress=stage(0.2, 0.75))
    report("scoring", 0.95)
    scorer = _Scorer(data, split, train_table, bkt, masteries, stacking)
    warm = scorer.score_group(split.warm_test, model, cf_model, cold=False)
    cold = scorer.score_group(split.cold_test, model, cf_model, cold=True) if split.cold_test.any() else None
    counts = {
        "train_events": int(split.train.sum()),
        "warm_test_events": int(split.warm_test.sum()),
        "cold_test_events": int(split.cold_test.sum()),
        "learners": len(table.learner_ids),
        "modules": len(catalog.module_ids),
    }
    report("done", 1.0)
    headline = split.cold_test if split.name == "cold" else split.warm_test
    calibration = scorer.calibration(headline, model, cold=split.name == "cold")
    if split.name == "cold":
        assert cold is not None
        return Evaluation("cold", cold, warm, counts, calibration, stacking), model
    return Evaluation(split.name, warm, None, counts, calibration, stacking), model


@dataclass(frozen=True)
class Stacking:
    """luban's weights on `_Scorer.stack_features` per test group (warm: learners seen in training;
    cold: learners known by features only), and what they were fitted on. A group without
    weights has them fitted on the training events themselves (`source` says so)."""

    warm: FloatArray | None
    cold: FloatArray | None
    source: str

    def to_json(self) -> dict[str, Any]:
        groups = (("warm", self.warm), ("cold", self.cold))
        weights = {g: [round(float(v), 4) for v in w] for g, w in groups if w is not None}
        return {"source": self.source, "weights": weights}


def stacking_inputs(
    train_data: TrainingData, split_name: str, config: TrainConfig
) -> dict[str, tuple[FloatArray, BoolArray, BoolArray]]:
    """What luban's weights are fitted on, per group: (stack features, outcomes, the rows of
    train_data's events they belong to). The training events are split again the way the outer
    split was made; knowledge tracing, the factor model and item difficulty are fitted on the
    inner training part only, and the features are read on the inner test rows, whose outcomes
    none of them saw (the learner's recent results are their earlier events only). A group with
    no inner test rows is left out."""
    table = train_data.events
    inner = make_split(split_name, table, config.seed)
    if not inner.train.any():
        return {}
    inner_table = table.subset(inner.train)
    catalog = train_data.catalog
    bkt, masteries = fit_knowledge_tracing(
        inner_table, catalog, reset_degenerate=config.reset_degenerate_bkt, learner_ability=config.learner_ability
    )
    inner_data = replace(train_data, events=inner_table)
    model = train_hybrid(inner_data, replace(config, fit_blend=False), bkt=bkt, masteries=masteries)
    scorer = _Scorer(train_data, inner, inner_table, bkt, masteries)
    found: dict[str, tuple[FloatArray, BoolArray, BoolArray]] = {}
    for group, rows, cold in (("warm", inner.warm_test, False), ("cold", inner.cold_test, True)):
        if rows.any():
            found[group] = (scorer.stack_features(model, rows, cold, leave_one_out=False), scorer.labels[rows], rows)
    return found


def fit_stacking(
    train_data: TrainingData, split_name: str, config: TrainConfig, progress: Progress | None = None
) -> Stacking:
    """luban's weights per group, fitted on stacking_inputs; a group whose inner test rows hold
    one outcome only (or none) is left to the in-sample fit."""
    report = progress or (lambda _m, _f: None)
    report("fitting the stacking weights on an inner split of the training events", 0.0)
    weights: dict[str, FloatArray] = {}
    for group, (x, labels, _) in stacking_inputs(train_data, split_name, config).items():
        if labels.any() and not labels.all():
            weights[group] = fit_logistic(x, labels)
    report("stacking weights fitted", 1.0)
    source = f"the inner test rows of a {split_name} split of the training events: {', '.join(weights) or 'none'}"
    return Stacking(weights.get("warm"), weights.get("cold"), source)


class _Scorer:
    """Every model's predictions for one split, computed once and shared across groups."""

    def __init__(
        self,
        data: TrainingData,
        split: Split,
        train_table: EventTable,
        bkt: ParamArrays,
        masteries: Mapping[tuple[int, int], float],
        stacking: Stacking | None = None,
    ) -> None:
        self.data, self.split, self.catalog = data, split, data.catalog
        self.stacking = stacking
        table = data.events
        self.labels = table.score >= PASS_SCORE
        self.bkt_pred = _bkt_predictions(table, bkt, data.catalog)
        # what the planner reads of knowledge tracing, on the results it predicts (module assessments)
        self.knowledge = knowledge_logits(table, data.catalog, bkt)
        self.module_rows = module_results(table)
        self.history = history_features(table, prior=float(self.labels[split.train].mean()))
        self.item_rate, self.module_rate = _success_rates(table, split.train)
        # mastery at the end of training, per learner id (warm learners only)
        self.train_mastery: dict[str, dict[str, float]] = {}
        for (lr, sk), m in masteries.items():
            self.train_mastery.setdefault(train_table.learner_ids[lr], {})[self.catalog.skill_ids[sk]] = m
        self.attempted_in_train = np.zeros((len(table.learner_ids), len(self.catalog.module_ids)), dtype=bool)
        self.attempted_in_train[table.learner[split.train], table.module[split.train]] = True
        self.popularity = np.bincount(table.module[split.train], minlength=len(self.catalog.module_ids)).astype(float)
        self.stackers: dict[str, FloatArray] = {}

    def learner_vectors(
        self, model: HybridModel, learners: npt.NDArray[np.int64], cold: bool
    ) -> tuple[FloatArray, FloatArray]:
        ids = [self.data.events.learner_ids[i] for i in learners]
        return model.learner_vectors(
            [self.data.learners.get(lid) for lid in ids],
            ids,
            [{} if cold else self.train_mastery.get(lid, {}) for lid in ids],
            cold=cold,
        )

    def _success_prob(self, model: HybridModel, rows: BoolArray, cold: bool) -> FloatArray:
        table = self.data.events
        learners, inverse = np.unique(table.learner[rows], return_inverse=True)
        success_vectors, _ = self.learner_vectors(model, learners, cold)
        module_vectors, _ = model.module_vectors(self.catalog)
        z = np.einsum("ij,ij->i", success_vectors[inverse], module_vectors[table.module[rows]])
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

    def _stacker(self, model: HybridModel, cold: bool) -> FloatArray:
        """Logistic blend of BKT, the factor model, item difficulty and recent results: the
        stacking weights of the group when fitted (fit_stacking), else fitted on the training
        events (whose factor-model logits were fitted on their own outcomes)."""
        fitted = None if self.stacking is None else self.stacking.cold if cold else self.stacking.warm
        if fitted is not None:
            return fitted
        name = str(id(model))
        if name not in self.stackers:
            rows = self.split.train
            x = self.stack_features(model, rows, cold=False, leave_one_out=True)
            self.stackers[name] = fit_logistic(x, self.labels[rows])
        return self.stackers[name]

    def stack_features(self, model: HybridModel, rows: BoolArray, cold: bool, leave_one_out: bool) -> FloatArray:
        item_rate = self.item_rate(rows, leave_one_out)
        return np.column_stack(
            [np.ones(int(rows.sum())), _logit(self.bkt_pred[rows]), _logit(self._success_prob(model, rows, cold)),
             _logit(item_rate), self.history[rows]]
        )  # fmt: skip

    def score_group(
        self, rows: BoolArray, model: HybridModel, cf_model: HybridModel | None, *, cold: bool
    ) -> dict[str, dict[str, float]]:
        """Every model's metrics on `rows` (only luban's without a CF-only model)."""
        rng = np.random.default_rng(7)

        def kt(pred: FloatArray, on: BoolArray = rows) -> dict[str, float]:
            labels, targets = self.labels[on], self.data.events.score[on]
            return {
                "auc": auc(labels, pred),
                "rmse": rmse(targets, pred),
                "ece": expected_calibration_error(labels, pred),
            }

        results = {"luban": kt(self._luban(rows, model, cold))}
        # the planner predicts the success of studying a module: scored on module assessments only
        served = rows & self.module_rows
        results["served"] = kt(self._served(served, model, cold), served) if served.any() else {}
        if cf_model is not None:
            results |= {
                "bkt": kt(self.bkt_pred[rows]),
                "cf_only": kt(self._success_prob(cf_model, rows, cold)),
                "popularity": kt(self.module_rate[self.data.events.module[rows]]),
                "random": kt(rng.random(int(rows.sum()))),
                "syllabus": {},
            }
        for name, values in self._ranking(rows, model, cf_model, cold, rng).items():
            results[name].update(values)
        return results

    def _luban(self, rows: BoolArray, model: HybridModel, cold: bool) -> FloatArray:
        """The hybrid's components stacked on `rows`: knowledge tracing, the factor model, item
        difficulty and the learner's recent results, weighed by a regression fitted on an inner
        split of the training events (fit_stacking). Evaluation's own blend: the service reads
        neither item difficulty nor recent results (`served` is what it plans with)."""
        stacked = self.stack_features(model, rows, cold, leave_one_out=False) @ self._stacker(model, cold)
        return _sigmoid(stacked)

    def _served(self, rows: BoolArray, model: HybridModel, cold: bool) -> FloatArray:
        """The planner's P(success) of the module of each of `rows` (module assessments): knowledge
        tracing's logit as the planner reads it before the study and the factor model's, weighed
        by the model's fitted blend (ml/blend.py)."""
        blend = model.blend
        z = (blend.knowledge * self.knowledge[rows] + blend.model * _logit(self._success_prob(model, rows, cold))
             + blend.intercept)  # fmt: skip
        return _sigmoid(z)

    def calibration(
        self, rows: BoolArray, model: HybridModel, *, cold: bool
    ) -> dict[str, list[tuple[float, float, int]]]:
        """Reliability bins of the service's predictions and of BKT's on `rows`."""
        if not rows.any():
            return {}
        labels = self.labels[rows]
        return {
            "luban": reliability(labels, self._luban(rows, model, cold)),
            "bkt": reliability(labels, self.bkt_pred[rows]),
        }

    def _ranking(
        self, rows: BoolArray, model: HybridModel, cf_model: HybridModel | None, cold: bool, rng: np.random.Generator
    ) -> dict[str, dict[str, float]]:
        table = self.data.events
        learners, inverse = np.unique(table.learner[rows], return_inverse=True)
        n_modules = len(self.catalog.module_ids)
        relevant = np.zeros((len(learners), n_modules), dtype=bool)
        relevant[inverse, table.module[rows]] = True
        candidates = ~self.attempted_in_train[learners]
        relevant &= candidates
        _, luban = self.learner_vectors(model, learners, cold)
        scores = {"luban": model.ranking_scores(luban, self.catalog)}
        if cf_model is not None:
            _, cf = self.learner_vectors(cf_model, learners, cold)
            scores |= {
                "cf_only": cf_model.ranking_scores(cf, self.catalog),
                "popularity": np.broadcast_to(self.popularity, relevant.shape),
                "random": rng.random(relevant.shape),
                "syllabus": self._syllabus_scores(learners),
            }
        return {name: ranking_at_k(s, candidates, relevant) for name, s in scores.items()}

    def _syllabus_scores(self, learners: npt.NDArray[np.int64]) -> FloatArray:
        """The role's modules in prerequisite order first, then the rest in prerequisite order."""
        catalog = self.catalog
        n = len(catalog.module_ids)
        base = np.empty(n)
        for position, module_id in enumerate(catalog.topological_order):
            base[catalog.module_index[module_id]] = -position - n
        by_role: dict[str, FloatArray] = {}
        out = np.empty((len(learners), n))
        for r, li in enumerate(learners):
            learner = self.data.learners.get(self.data.events.learner_ids[li])
            role_id = learner.target_role_id if learner else ""
            if role_id not in by_role:
                by_role[role_id] = _role_order(catalog, role_id, base)
            out[r] = by_role[role_id]
        return out


def score_model(
    data: TrainingData, split: Split, model: HybridModel, stacking: Stacking | None = None
) -> dict[str, float]:
    """The metrics of an already trained model on a split's headline test set (the same numbers
    `evaluate` reports for a model it trains), for promote-if-better comparisons; `stacking`: the
    weights the new model was scored with (an evaluation's), so both are stacked alike."""
    table = data.events
    train_table = table.subset(split.train)
    bkt = ParamArrays.from_model(model.bkt, data.catalog.skill_ids, data.catalog.module_ids)
    masteries = final_masteries(train_table.skill_sequences(data.catalog.module_skill_weights), bkt)
    scorer = _Scorer(data, split, train_table, bkt, masteries, stacking)
    cold = split.name == "cold"
    group = split.cold_test if cold else split.warm_test
    return scorer.score_group(group, model, None, cold=cold)["luban"]


def _role_order(catalog: Catalog, role_id: str, base: FloatArray) -> FloatArray:
    scores = base.copy()
    role = catalog.roles.get(role_id)
    if role is None:
        return scores
    needed = {r.skill_id for r in role.requirements}
    for position, module_id in enumerate(catalog.topological_order):
        if needed & set(catalog.modules[module_id].skill_ids):
            scores[catalog.module_index[module_id]] = -position
    return scores


def history_features(table: EventTable, prior: float, window: int = 10) -> FloatArray:
    """Per event, from the same learner's earlier events only: logit of the smoothed success rate
    overall and over the last `window` events, and log(1 + number of earlier events)."""
    y = (table.score >= PASS_SCORE).astype(np.float64)
    n = len(table)
    starts = np.flatnonzero(np.r_[True, table.learner[1:] != table.learner[:-1]]) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, n])
    start_of = np.repeat(starts, lengths)
    position = np.arange(n) - start_of
    cs = np.r_[0.0, np.cumsum(y)]
    before = cs[np.arange(n)] - cs[start_of]
    window_start = np.maximum(np.arange(n) - window, start_of)
    recent = cs[np.arange(n)] - cs[window_start]
    recent_n = np.arange(n) - window_start
    overall = (before + 2 * prior) / (position + 2)
    last = (recent + 2 * prior) / (recent_n + 2)
    return np.column_stack([_logit(overall), _logit(last), np.log1p(position)])


def _bkt_predictions(table: EventTable, bkt: ParamArrays, catalog: Catalog) -> FloatArray:
    """P(correct) for every event before it is observed (mean over its skills)."""
    rows, _ = table.expanded()
    seqs = table.skill_sequences(catalog.module_skill_weights)
    flat, _ = filter_sequences(seqs, bkt)
    per_skill_row = np.empty(len(rows))
    per_skill_row[seqs.row_of] = flat
    counts = np.diff(table.skill_ptr)
    return np.bincount(rows, weights=per_skill_row, minlength=len(table)) / np.maximum(counts, 1)


def _success_rates(table: EventTable, train: BoolArray) -> tuple[Callable[[BoolArray, bool], FloatArray], FloatArray]:
    """Smoothed success rate per item (shrunk toward its module's rate) from training events only;
    training rows may ask for leave-one-out rates so their own outcome does not leak."""
    y = (table.score >= PASS_SCORE).astype(np.float64)
    overall = float(y[train].mean()) if train.any() else 0.5
    n_modules = int(table.module.max(initial=0)) + 1
    m_sum = np.bincount(table.module[train], weights=y[train], minlength=n_modules)
    m_cnt = np.bincount(table.module[train], minlength=n_modules)
    module_rate = (m_sum + SMOOTHING * overall) / (m_cnt + SMOOTHING)
    n_items = len(table.item_ids)
    i_sum = np.bincount(table.item[train], weights=y[train], minlength=n_items)
    i_cnt = np.bincount(table.item[train], minlength=n_items)
    i_sum[0], i_cnt[0] = 0.0, 0  # events without an item fall back to the module rate

    def item_rate(rows: BoolArray, leave_one_out: bool) -> FloatArray:
        items, modules = table.item[rows], table.module[rows]
        s, c = i_sum[items], i_cnt[items].astype(np.float64)
        if leave_one_out:
            own = (items != 0).astype(np.float64)
            s, c = s - y[rows] * own, c - own
        return (s + SMOOTHING * module_rate[modules]) / (c + SMOOTHING)

    return item_rate, module_rate


def _logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(p / (1 - p)))


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))
