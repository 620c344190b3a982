"""How much the planner's P(success) of studying a module listens to knowledge tracing and how
much to the hybrid model: a logistic blend of their logits, fitted at training on learners the
factor model did not see, so each source weighs what it predicts there and no more.

Knowledge tracing's side is the planner's own expression (_success in planner/plan.py): the
module's predicted score from the skills' mastery held just before the study, shifted by the
module's difficulty. The model's side is the success factor model's logit for a learner scored
from their features alone, as a new learner is served. A fixed half-and-half blend let a model
that predicts little on a population move paths as much as the learner's own evidence does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.domain.assessment import ResultKind
from recommender.domain.catalog import Catalog
from recommender.kt.fit import ParamArrays, masteries_before
from recommender.ml.data import EventTable

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

BLEND_META = "success_blend"
HELD_OUT_SHARE = 0.2  # of the learners, held out of the factor model fitted for the blend
MIN_HELD_OUT_RESULTS = 200  # fewer held-out module results (or one outcome only): the default blend
CONTENT_CLIP = 1e-4  # the planner's clip of a predicted score before its logit


@dataclass(frozen=True)
class SuccessBlend:
    """logit P(success) = knowledge * knowledge-tracing logit + model * model logit + intercept.
    The default (half and half) is what artifacts trained before the blend was fitted are served
    with; `source` says where a blend came from."""

    knowledge: float = 0.5
    model: float = 0.5
    intercept: float = 0.0
    source: str = "default"

    def to_meta(self) -> dict[str, Any]:
        return {"knowledge": self.knowledge, "model": self.model, "intercept": self.intercept, "source": self.source}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SuccessBlend:
        found = meta.get(BLEND_META)
        if not isinstance(found, Mapping):
            return cls()
        return cls(float(found["knowledge"]), float(found["model"]), float(found["intercept"]), str(found["source"]))


def held_out_learners(n_learners: int, seed: int) -> BoolArray:
    """A seeded share of the learners (HELD_OUT_SHARE, at least one when there are two or more)."""
    held = np.zeros(n_learners, dtype=bool)
    if n_learners < 2:
        return held
    count = max(1, round(HELD_OUT_SHARE * n_learners))
    held[np.random.default_rng(seed).permutation(n_learners)[:count]] = True
    return held


def module_results(table: EventTable) -> BoolArray:
    """The events a module's success is predicted for: module assessments."""
    return np.asarray(table.kind == int(ResultKind.MODULE_ASSESSMENT))


def knowledge_logits(table: EventTable, catalog: Catalog, params: ParamArrays) -> FloatArray:
    """Per event, knowledge tracing's logit of succeeding at its module as the planner computes it
    before the study: the module's skills' mastery weighed by their share, read through the
    module's emissions, plus the difficulty shift. The skills are the event's (a result that names
    none has its module's); one that names only some of them reads those alone."""
    weights = catalog.module_skill_weights
    seqs = table.skill_sequences(weights)
    before = np.empty(len(seqs.obs))
    before[seqs.row_of] = masteries_before(seqs, params)
    events, skills = table.expanded()
    totals = weights.sum(axis=1)
    share = np.divide(weights, totals[:, None], out=np.zeros_like(weights), where=totals[:, None] > 0)
    row_share = share[table.module[events], skills]
    n = len(table)
    known = np.bincount(events, weights=row_share * before, minlength=n)
    guess = np.bincount(events, weights=row_share * params.guess[skills], minlength=n)
    right = 1.0 - np.bincount(events, weights=row_share * params.slip[skills], minlength=n)
    content = np.clip(known * right + (1.0 - known) * guess, CONTENT_CLIP, 1 - CONTENT_CLIP)
    difficulty = np.array([catalog.modules[m].difficulty for m in catalog.module_ids])
    return np.asarray(np.log(content / (1.0 - content)) + 2.0 * (0.5 - difficulty[table.module]))


def fit_blend(knowledge: FloatArray, model: FloatArray, succeeded: BoolArray) -> SuccessBlend:
    """The blend that best predicts `succeeded` (logistic regression on the two logits). The
    model's logit, if its weight comes out negative (it predicts backwards on these learners), is
    left out and knowledge tracing's refitted. If knowledge tracing's weight comes out negative, it
    is held at the default's weight and the model's weight and the intercept are fitted beside it.
    Too few results or one outcome only keep the default."""
    if len(succeeded) < MIN_HELD_OUT_RESULTS:
        return SuccessBlend(source=f"default: {len(succeeded)} held-out module results, too few to fit")
    if succeeded.all() or not succeeded.any():
        return SuccessBlend(source="default: the held-out module results hold one outcome only")
    columns = [knowledge, model]
    used = [0, 1]
    while True:
        x = np.column_stack([np.ones(len(succeeded)), *(columns[i] for i in used)])
        w = fit_logistic(x, succeeded)
        negative = [i for i, v in zip(used, w[1:], strict=True) if v < 0]
        if not negative or not used:
            break
        used = [i for i in used if i not in negative]
    weights = dict(zip(used, w[1:].tolist(), strict=True))
    if 0 not in weights:
        # the planner's success must follow the learner's own evidence: a blend without it would
        # pitch every module by the model's opinion alone, however the learner's results go. Held
        # at the default's weight, what it leaves unexplained is what the rest is fitted to
        return _beside_knowledge(knowledge, model, succeeded)
    return SuccessBlend(
        knowledge=float(weights.get(0, 0.0)),
        model=float(weights.get(1, 0.0)),
        intercept=float(w[0]),
        source=f"fitted on {len(succeeded)} held-out module results",
    )


def _beside_knowledge(knowledge: FloatArray, model: FloatArray, succeeded: BoolArray) -> SuccessBlend:
    """Knowledge tracing at the default's weight, the model's weight (left out if negative) and
    the intercept fitted beside it: its logit enters the regression as a fixed offset."""
    held = SuccessBlend().knowledge
    offset = held * knowledge
    ones = np.ones(len(succeeded))
    w = fit_logistic(np.column_stack([ones, model]), succeeded, offset=offset)
    if w[1] < 0:
        w = np.array([fit_logistic(ones[:, None], succeeded, offset=offset)[0], 0.0])
    return SuccessBlend(
        knowledge=held,
        model=float(w[1]),
        intercept=float(w[0]),
        source=f"fitted on {len(succeeded)} held-out module results, knowledge tracing held at the default's weight",
    )


def fit_logistic(
    x: FloatArray, labels: BoolArray, l2: float = 1e-3, iterations: int = 25, offset: FloatArray | None = None
) -> FloatArray:
    """Logistic regression by Newton's method (a handful of features); `offset`: a fixed term of
    each row's logit, with no weight to fit."""
    if offset is None:
        offset = np.zeros(len(x))
    if len(x) > 300_000:
        pick = np.random.default_rng(0).choice(len(x), 300_000, replace=False)
        x, labels, offset = x[pick], labels[pick], offset[pick]
    y = labels.astype(np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w + offset, -30, 30)))
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w
