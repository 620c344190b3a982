"""Training: BKT per skill, then the two LightFM factor models on the same features.

What the model learns, and why:
- `success`: logistic loss on each (learner, module) pair's outcome (+1 when the mean score is at
  least PASS_SCORE, -1 otherwise), weighted by attempts. It predicts P(success on a module) for the
  planner's zone-of-proximal-development term and for knowledge-tracing predictions.
- `ranking`: WARP loss on attempted modules: what learners like this one take next, for ranking.
Both see learner features (country, languages, program, role, HSK, declared attributes) and
module features (skills, track, difficulty, languages), so a learner with no history is scored from
features alone; `ranking` also sees the learner's mastery buckets. `success` does not: a training
learner's mastery is BKT's estimate after all of their training events, the very outcomes
`success` is fitted on, so it would learn to lean on a feature that encodes its labels (target
leakage), and then serve learners whose mastery does not (new learners have none). What a
learner's own results say reaches the planner's expected success through BKT.
LightFM runs single-threaded with a fixed seed: training is deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.domain.catalog import Catalog
from recommender.kt.bkt import DEFAULT_PARAMS, BKTModel, SkillParams
from recommender.kt.fit import ParamArrays, filter_sequences, fit_bkt
from recommender.kt.sequences import Sequences
from recommender.ml.blend import (
    BLEND_META,
    SuccessBlend,
    fit_blend,
    held_out_learners,
    knowledge_logits,
    module_results,
)
from recommender.ml.data import EventTable, TrainingData
from recommender.ml.features import (
    NO_FEATURES,
    FeatureSchema,
    FeatureSpace,
    as_float32,
    identity_heavy,
    learner_tokens,
    module_tokens,
)
from recommender.ml.model import SUCCESS_READS_MASTERY_META, FactorModel, HybridModel

PASS_SCORE = 0.5
Progress = Callable[[str, float], None]  # (message, fraction done)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    epochs: int = 15
    components: int = 16
    learning_rate: float = 0.05
    alpha: float = 1e-5
    use_features: bool = True
    fit_bkt: bool = True
    # what every skill is served with when fit_bkt is off: the untrained defaults, or, in the lab,
    # the parameters a fit could at best recover (python -m lab fixed-kt)
    unfitted_bkt: SkillParams = DEFAULT_PARAMS
    # skills whose BKT fit is degenerate (guess or slip at its bound) keep the default parameters:
    # their results do not tell mastered from unmastered, and a planner fed those estimates plans
    # paths longer than the fixed syllabus (docs/decisions/0004-degenerate-bkt-reset.md)
    reset_degenerate_bkt: bool = True
    # fit module scores beside each past learner's general ability, so the fitted state is
    # knowledge, not ability; off: the state may carry ability, read as a skill known from the
    # start and never learned (docs/decisions/0024-learner-ability-in-the-fit.md)
    learner_ability: bool = True
    # the learner attributes that may become features (none unless declared)
    features: FeatureSchema = NO_FEATURES
    # fit the planner's blend of knowledge tracing and the model on held-out learners (ml/blend.py);
    # off: the half-and-half default
    fit_blend: bool = True

    def recorded(self) -> dict[str, Any]:
        """The settings a model's metadata keeps (the feature schema is kept apart; the
        parameters served without a fit only when there is no fit)."""
        skipped = {"features"} | ({"unfitted_bkt"} if self.fit_bkt else set())
        return {k: v for k, v in asdict(self).items() if k not in skipped}


def fit_knowledge_tracing(
    table: EventTable, catalog: Catalog, *, reset_degenerate: bool = False, learner_ability: bool = True
) -> tuple[ParamArrays, dict[tuple[int, int], float]]:
    """BKT parameters and each (learner, skill) mastery after the learner's last event."""
    n_skills = len(catalog.skill_ids)
    seqs = table.skill_sequences(catalog.module_skill_weights)
    params = fit_bkt(seqs, n_skills, reset_degenerate=reset_degenerate, learner_ability=learner_ability)
    return params, final_masteries(seqs, params)


def final_masteries(seqs: Sequences, params: ParamArrays) -> dict[tuple[int, int], float]:
    """Each (learner, skill) mastery after the learner's last result on it."""
    _, final = filter_sequences(seqs, params)
    return {(int(lr), int(sk)): float(m) for lr, sk, m in zip(seqs.learner, seqs.skill, final, strict=True)}


def train_hybrid(
    data: TrainingData,
    config: TrainConfig,
    *,
    version: str = "",
    bkt: ParamArrays | None = None,
    masteries: dict[tuple[int, int], float] | None = None,
    progress: Progress | None = None,
) -> HybridModel:
    from lightfm import LightFM

    started = time.perf_counter()
    catalog, table = data.catalog, data.events
    report = progress or (lambda _m, _f: None)
    if bkt is None or masteries is None:
        report("fitting BKT", 0.0)
        if config.fit_bkt:
            bkt, masteries = fit_knowledge_tracing(
                table, catalog, reset_degenerate=config.reset_degenerate_bkt, learner_ability=config.learner_ability
            )
        else:
            bkt, masteries = ParamArrays.constant(len(catalog.skill_ids), config.unfitted_bkt), {}
    per_learner: list[dict[str, float]] = [{} for _ in table.learner_ids]
    for (lr, sk), m in masteries.items():
        per_learner[lr][catalog.skill_ids[sk]] = m

    learner_token_lists = [
        learner_tokens(
            data.learners.get(lid),
            lid,
            per_learner[i],
            identity=True,
            use_features=config.use_features,
            schema=config.features,
        )
        for i, lid in enumerate(table.learner_ids)
    ]
    attempted = np.zeros(len(catalog.module_ids), dtype=bool)
    attempted[np.unique(table.module)] = True
    module_token_lists = [
        module_tokens(catalog.modules[m], identity=bool(attempted[j]), use_features=config.use_features)
        for j, m in enumerate(catalog.module_ids)
    ]
    success_token_lists = [
        learner_tokens(
            data.learners.get(lid), lid, {}, identity=True, use_features=config.use_features, schema=config.features
        )
        for lid in table.learner_ids
    ]
    user_space, item_space = FeatureSpace.of(learner_token_lists), FeatureSpace.of(module_token_lists)
    x = as_float32(user_space.matrix(success_token_lists))
    y = as_float32(item_space.matrix(module_token_lists))
    x_rank = as_float32(user_space.matrix([identity_heavy(t) for t in learner_token_lists]))
    y_rank = as_float32(item_space.matrix([identity_heavy(t) for t in module_token_lists]))

    shape = (len(table.learner_ids), len(catalog.module_ids))
    pairs = table.learner * shape[1] + table.module
    unique, inverse, counts = np.unique(pairs, return_inverse=True, return_counts=True)
    mean_score = np.bincount(inverse, weights=table.score) / counts
    users, items = np.divmod(unique, shape[1])
    labels = np.where(mean_score >= PASS_SCORE, 1.0, -1.0).astype(np.float32)
    weights = (1.0 + np.log(counts)).astype(np.float32)
    success_interactions = sparse.coo_matrix((labels, (users, items)), shape=shape)
    success_weights = sparse.coo_matrix((weights, (users, items)), shape=shape)
    ranking_interactions = sparse.coo_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)

    def factors(model: Any) -> FactorModel:
        return FactorModel(
            user_embeddings=np.asarray(model.user_embeddings, dtype=np.float32),
            user_biases=np.asarray(model.user_biases, dtype=np.float32),
            item_embeddings=np.asarray(model.item_embeddings, dtype=np.float32),
            item_biases=np.asarray(model.item_biases, dtype=np.float32),
        )

    def fit(
        loss: str,
        interactions: sparse.coo_matrix,
        sample_weight: sparse.coo_matrix | None,
        part: int,
        features: tuple[sparse.csr_matrix, sparse.csr_matrix],
    ) -> Any:
        model = LightFM(
            no_components=config.components,
            loss=loss,
            learning_rate=config.learning_rate,
            item_alpha=config.alpha,
            user_alpha=config.alpha,
            random_state=np.random.RandomState(config.seed + part),
        )
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            model.fit_partial(interactions, user_features=features[0], item_features=features[1],
                              sample_weight=sample_weight, epochs=1, num_threads=1)  # fmt: skip
            done = (part * config.epochs + epoch + 1) / (parts * config.epochs)
            report(f"{loss} epoch {epoch + 1}/{config.epochs} ({time.perf_counter() - t0:.2f} s)", done)
        return model

    parts = 3 if config.fit_blend else 2
    success = fit("logistic", success_interactions, success_weights, 0, (x, y))
    ranking = fit("warp", ranking_interactions, None, 1, (x_rank, y_rank))
    blend = SuccessBlend(source="default: not fitted (TrainConfig.fit_blend off)")
    if config.fit_blend:
        # the same success model, fitted without a held-out share of the learners, then scored on
        # them from their features alone (as a new learner is served), beside knowledge tracing
        # fitted on the same learners the factor model saw
        held = held_out_learners(len(table.learner_ids), config.seed)
        seen = ~held[users]

        def part_of(values: np.ndarray) -> sparse.coo_matrix:
            return sparse.coo_matrix((values[seen], (users[seen], items[seen])), shape=shape)

        held_success = factors(fit("logistic", part_of(labels), part_of(weights), 2, (x, y)))
        blend = _held_out_blend(data, config, held, held_success, user_space, y)

    bkt_model: BKTModel = bkt.to_model(catalog.skill_ids, catalog.module_ids)
    meta = {
        SUCCESS_READS_MASTERY_META: False,
        BLEND_META: blend.to_meta(),
        "params": config.recorded(),
        "data_fingerprint": data.fingerprint(),
        "counts": {
            "events": len(table),
            "learners": len(table.learner_ids),
            "modules": len(catalog.module_ids),
            "skills": len(catalog.skill_ids),
            "pairs": len(users),
        },
        "training_seconds": round(time.perf_counter() - started, 3),
    }
    return HybridModel(
        version=version,
        user_space=user_space,
        item_space=item_space,
        success=factors(success),
        ranking=factors(ranking),
        bkt=bkt_model,
        use_features=config.use_features,
        features=config.features,
        meta=meta,
    )


def _held_out_blend(
    data: TrainingData,
    config: TrainConfig,
    held: npt.NDArray[np.bool_],
    held_success: FactorModel,
    user_space: FeatureSpace,
    module_features: sparse.csr_matrix,
) -> SuccessBlend:
    """The success blend fitted on the held-out learners' module results: knowledge tracing
    fitted without them, and `held_success` (the success model fitted without them) scoring them
    from their features alone."""
    catalog, table = data.catalog, data.events
    held_table = table.subset(held[table.learner])
    chosen = module_results(held_table)
    if not chosen.any():
        return fit_blend(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
    seen_table = table.subset(~held[table.learner])
    n_skills = len(catalog.skill_ids)
    seen_bkt = (
        fit_bkt(seen_table.skill_sequences(catalog.module_skill_weights), n_skills,
                reset_degenerate=config.reset_degenerate_bkt, learner_ability=config.learner_ability)
        if config.fit_bkt and len(seen_table)
        else ParamArrays.constant(n_skills, config.unfitted_bkt)
    )  # fmt: skip
    knowledge = knowledge_logits(held_table, catalog, seen_bkt)[chosen]
    cold = as_float32(user_space.matrix([
        learner_tokens(data.learners.get(lid), lid, {}, identity=False, use_features=config.use_features,
                       schema=config.features)
        for lid in held_table.learner_ids
    ]))  # fmt: skip
    learner_vectors = held_success.learner_vectors(cold)
    module_vectors = held_success.module_vectors(module_features)
    learners, modules = held_table.learner[chosen], held_table.module[chosen]
    model_logit = np.einsum("ij,ij->i", learner_vectors[learners], module_vectors[modules])
    return fit_blend(knowledge, model_logit, held_table.score[chosen] >= PASS_SCORE)
