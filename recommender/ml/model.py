"""The serving model: plain numpy, no LightFM import. Two factor models share the feature spaces:
`success` (logistic loss on passed/failed attempts: P(success on a module)) and `ranking` (WARP on
attempted modules: which modules learners like this one take next). Biases are folded into two
extra columns so scoring is one matmul:
    learner = [sum_f x_f e_f, 1, sum_f x_f b_f],  module = [sum_g y_g e_g, sum_g y_g b_g, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.domain.catalog import Catalog
from recommender.domain.learner import Learner
from recommender.kt.bkt import BKTModel
from recommender.ml.blend import SuccessBlend
from recommender.ml.features import (
    NO_FEATURES,
    FeatureSchema,
    FeatureSpace,
    Tokens,
    identity_heavy,
    learner_tokens,
    module_tokens,
)

FloatArray = npt.NDArray[np.float64]
# the meta key recording whether the success model was trained on learners' mastery tokens
SUCCESS_READS_MASTERY_META = "success_reads_mastery"

ROW_BLOCK = 64  # learners per elementwise block in success_by_row (bounds its temporary array)


@dataclass(frozen=True)
class FactorModel:
    user_embeddings: npt.NDArray[np.float32]  # (n_user_features, k)
    user_biases: npt.NDArray[np.float32]  # (n_user_features,)
    item_embeddings: npt.NDArray[np.float32]  # (n_item_features, k)
    item_biases: npt.NDArray[np.float32]  # (n_item_features,)

    def learner_vectors(self, x: sparse.csr_matrix) -> FloatArray:
        emb = x @ self.user_embeddings
        bias = x @ self.user_biases
        return np.column_stack([emb, np.ones(x.shape[0]), bias]).astype(np.float64)

    def module_vectors(self, y: sparse.csr_matrix) -> FloatArray:
        emb = y @ self.item_embeddings
        bias = y @ self.item_biases
        return np.column_stack([emb, bias, np.ones(y.shape[0])]).astype(np.float64)


@dataclass(frozen=True)
class HybridModel:
    version: str
    user_space: FeatureSpace
    item_space: FeatureSpace
    success: FactorModel
    ranking: FactorModel
    bkt: BKTModel
    use_features: bool = True
    features: FeatureSchema = NO_FEATURES  # the attributes this model reads (as it was trained)
    meta: Mapping[str, Any] = field(default_factory=dict)
    _module_cache: dict[tuple[int, str], tuple[FloatArray, FloatArray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def module_vectors(self, catalog: Catalog) -> tuple[FloatArray, FloatArray]:
        """(success, ranking) module vectors in catalog.module_ids order, built once per revision.
        Modules added after training are represented by their features alone."""
        key = (catalog.revision, ",".join(catalog.module_ids[:3]) + str(len(catalog.module_ids)))
        cached = self._module_cache.get(key)
        if cached is None:
            tokens = [
                module_tokens(catalog.modules[m], identity=True, use_features=self.use_features)
                for m in catalog.module_ids
            ]
            cached = (
                self.success.module_vectors(self.item_space.matrix(tokens)),
                self.ranking.module_vectors(self.item_space.matrix([identity_heavy(t) for t in tokens])),
            )
            self._module_cache.clear()
            self._module_cache[key] = cached
        return cached

    @property
    def success_reads_mastery(self) -> bool:
        """Whether the success model reads the learner's mastery tokens. A model trained since
        mastery left its success side does not (ml.train); an older artifact
        was trained with them and is served as it was trained."""
        return bool(self.meta.get(SUCCESS_READS_MASTERY_META, True))

    @cached_property
    def blend(self) -> SuccessBlend:
        """How the planner weighs this model's success logit against knowledge tracing's: fitted
        at training (ml/blend.py); an artifact trained before that is served half and half. Read
        from the metadata once: every planned path asks for it."""
        return SuccessBlend.from_meta(self.meta)

    def without_user_features(self, names: Iterable[str]) -> HybridModel:
        """The model with these learner features' rows removed from both factor models (an erased
        learner's identity): every other row, and so every other learner's scores, stays as it was,
        and a learner who had that identity is scored from their features, as a new learner."""
        index = self.user_space.index
        drop = sorted({index[n] for n in names if n in index})
        if not drop:
            return self
        keep = np.setdiff1d(np.arange(len(self.user_space.names)), drop)

        def rows(f: FactorModel) -> FactorModel:
            return replace(f, user_embeddings=f.user_embeddings[keep], user_biases=f.user_biases[keep])

        return replace(
            self,
            user_space=FeatureSpace(tuple(self.user_space.names[i] for i in keep)),
            success=rows(self.success),
            ranking=rows(self.ranking),
            _module_cache={},
        )

    def identity_names(self) -> list[str]:
        """The learner identity features (`id:<model key>`) this model carries."""
        return [n for n in self.user_space.names if n.startswith("id:")]

    def knows_learner(self, learner_id: str) -> bool:
        """Whether training saw this learner (their identity feature shapes their vectors)."""
        return f"id:{learner_id}" in self.user_space.index

    def cold_signature(self, learner: Learner) -> tuple[object, ...]:
        """Equal for learners with no history and no identity whom the model sees alike: the
        fields learner_tokens reads, with the attributes as the model's feature schema reads them
        (an undeclared one, a name or an e-mail, does not count). Computed for every learner of a
        batch."""
        if not self.use_features:
            return ()
        attributes = tuple(self.features.tokens(learner.attributes))
        return (learner.country, learner.languages, learner.program, learner.target_role_id,
                learner.chinese_level, attributes)  # fmt: skip

    def learner_vectors(
        self,
        learners: Sequence[Learner | None],
        learner_ids: Sequence[str],
        masteries: Sequence[Mapping[str, float]],
        *,
        cold: bool = False,
    ) -> tuple[FloatArray, FloatArray]:
        """(success, ranking) learner vectors. A learner the model never saw (or `cold`) has no
        identity feature, so they are scored from their features and mastery alone (the success
        side from their features alone, unless the model was trained to read mastery there)."""
        tokens = self._learner_tokens(learners, learner_ids, masteries, cold)
        success_tokens = (
            tokens
            if self.success_reads_mastery
            else self._learner_tokens(learners, learner_ids, [{}] * len(learner_ids), cold)
        )
        return (
            self.success.learner_vectors(self.user_space.matrix(success_tokens)),
            self.ranking.learner_vectors(self.user_space.matrix([identity_heavy(t) for t in tokens])),
        )

    def success_vectors(
        self, learners: Sequence[Learner | None], learner_ids: Sequence[str], masteries: Sequence[Mapping[str, float]]
    ) -> FloatArray:
        """The success side of learner_vectors alone (planning needs no ranking vectors)."""
        if not self.success_reads_mastery:
            masteries = [{}] * len(learner_ids)
        return self.success.learner_vectors(
            self.user_space.matrix(self._learner_tokens(learners, learner_ids, masteries, False))
        )

    def _learner_tokens(
        self,
        learners: Sequence[Learner | None],
        learner_ids: Sequence[str],
        masteries: Sequence[Mapping[str, float]],
        cold: bool,
    ) -> list[Tokens]:
        index = self.user_space.index
        return [
            learner_tokens(
                x,
                lid,
                m,
                identity=not cold and f"id:{lid}" in index,
                use_features=self.use_features,
                schema=self.features,
            )
            for x, lid, m in zip(learners, learner_ids, masteries, strict=True)
        ]

    def success_probability(self, learner_vectors: FloatArray, catalog: Catalog) -> FloatArray:
        """(n_learners, n_modules) P(success) from success learner vectors."""
        modules, _ = self.module_vectors(catalog)
        return _sigmoid(learner_vectors @ modules.T)

    def success_by_row(self, learner_vectors: FloatArray, catalog: Catalog) -> FloatArray:
        """success_probability with each learner's row computed on its own (elementwise products
        summed along the row): a row never depends on which other learners share the call, which
        batch planning relies on. A BLAS product rounds differently with the matrix's shape."""
        modules, _ = self.module_vectors(catalog)
        learner_vectors = np.ascontiguousarray(learner_vectors)  # sums along C-ordered rows only
        logits = np.empty((len(learner_vectors), len(modules)))
        for start in range(0, len(learner_vectors), ROW_BLOCK):
            block = learner_vectors[start : start + ROW_BLOCK]
            logits[start : start + ROW_BLOCK] = (block[:, None, :] * modules[None, :, :]).sum(axis=2)
        return _sigmoid(logits)

    def ranking_scores(self, learner_vectors: FloatArray, catalog: Catalog) -> FloatArray:
        _, modules = self.module_vectors(catalog)
        return learner_vectors @ modules.T


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))), dtype=np.float64)
