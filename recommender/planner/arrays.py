"""Catalog and knowledge-tracing data laid out as numpy arrays, built once per catalog revision
(and model), so planning a step is a handful of vectorized operations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.domain.catalog import Catalog
from recommender.kt.bkt import BKTModel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CatalogArrays:
    """Modules and skills are indexed in sorted-id order (catalog.module_ids, catalog.skill_ids)."""

    catalog: Catalog
    weights: FloatArray  # (n_modules, n_skills) skill weight taught by each module
    weight_share: FloatArray  # (n_modules, n_skills) rows normalized to sum 1
    teaches: sparse.csr_matrix  # (n_modules, n_skills) 1 where a module teaches a skill
    prerequisites: sparse.csr_matrix  # (n_modules, n_modules) [j, p] = 1 if p is a prerequisite of j
    unlock_share: sparse.csr_matrix  # (n_modules, n_modules) [p, j] = 1 / n_prereq(j)
    minutes: FloatArray  # (n_modules,)
    difficulty: FloatArray  # (n_modules,)
    min_chinese_level: npt.NDArray[np.int64]  # (n_modules,)
    taught_in: dict[str, BoolArray]  # primary language subtag -> (n_modules,) mask
    depth: int  # modules on the longest prerequisite chain

    @classmethod
    def build(cls, catalog: Catalog) -> CatalogArrays:
        n_modules = len(catalog.module_ids)
        weights = catalog.module_skill_weights
        totals = weights.sum(axis=1, keepdims=True)
        share = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
        rows, cols = [], []
        for j, module_id in enumerate(catalog.module_ids):
            for p in catalog.modules[module_id].prerequisite_module_ids:
                rows.append(j)
                cols.append(catalog.module_index[p])
        prereq = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_modules, n_modules), dtype=np.float64)
        n_prereq = np.asarray(prereq.sum(axis=1)).ravel()
        unlock = sparse.csr_matrix(
            (1.0 / n_prereq[rows] if rows else np.ones(0), (cols, rows)),
            shape=(n_modules, n_modules),
            dtype=np.float64,
        )
        taught_in: dict[str, BoolArray] = {}
        for j, module_id in enumerate(catalog.module_ids):
            for lang in catalog.modules[module_id].languages:
                key = primary_language(lang)
                taught_in.setdefault(key, np.zeros(n_modules, dtype=bool))[j] = True
        modules = [catalog.modules[m] for m in catalog.module_ids]
        chain: dict[str, int] = {}
        for module_id in catalog.topological_order:
            prereqs = catalog.modules[module_id].prerequisite_module_ids
            chain[module_id] = 1 + max((chain[p] for p in prereqs), default=0)
        return cls(
            catalog=catalog,
            weights=weights,
            weight_share=share,
            teaches=sparse.csr_matrix((weights > 0).astype(np.float64)),
            prerequisites=prereq,
            unlock_share=unlock,
            minutes=np.array([m.estimated_minutes for m in modules], dtype=np.float64),
            difficulty=np.array([m.difficulty for m in modules], dtype=np.float64),
            min_chinese_level=np.array([m.min_chinese_level for m in modules], dtype=np.int64),
            taught_in=taught_in,
            depth=max(chain.values(), default=0),
        )

    def language_mask(self, languages: tuple[str, ...], chinese_level: int) -> BoolArray:
        """Modules the learner can follow: taught in one of their languages, and when Chinese is
        the only such language, their HSK level meets the module's minimum."""
        n = len(self.minutes)
        any_match = np.zeros(n, dtype=bool)
        other_match = np.zeros(n, dtype=bool)
        for lang in {primary_language(x) for x in languages}:
            mask = self.taught_in.get(lang)
            if mask is None:
                continue
            any_match |= mask
            if lang != "zh":
                other_match |= mask
        chinese_only = any_match & ~other_match
        return np.asarray(any_match & (~chinese_only | (self.min_chinese_level <= chinese_level)))


@dataclass(frozen=True)
class SkillParamArrays:
    """BKT parameters per skill in catalog.skill_ids order."""

    prior: FloatArray
    learn: FloatArray
    guess: FloatArray
    slip: FloatArray

    @classmethod
    def build(cls, catalog: Catalog, model: BKTModel) -> SkillParamArrays:
        params = [model.of(s) for s in catalog.skill_ids]
        return cls(
            prior=np.array([p.prior for p in params]),
            learn=np.array([p.learn for p in params]),
            guess=np.array([p.guess for p in params]),
            slip=np.array([p.slip for p in params]),
        )


def primary_language(tag: str) -> str:
    return tag.split("-", 1)[0].lower()
