"""Learner and module features for the hybrid model.

Learners: country, languages, program, target role, HSK level, free attributes, and buckets of
current mastery per practiced skill; warm learners (seen in training) add an identity feature.
Modules: skills (by weight), track, difficulty bucket, languages; warm modules add an identity.
Rows are normalized to sum 1, as LightFM recommends, so a learner's representation is the mean of
their feature embeddings: a learner the model never saw is scored from features alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from recommender.domain.catalog import Module
from recommender.domain.learner import Learner

Tokens = list[tuple[str, float]]
MASTERY_BUCKETS = ((0.4, "lo"), (0.8, "mid"), (1.01, "hi"))


@dataclass(frozen=True)
class FeatureSpace:
    """Frozen map from feature names to columns; unknown names are ignored at serving time."""

    names: tuple[str, ...]

    @property
    def index(self) -> dict[str, int]:
        cached: dict[str, int] | None = self.__dict__.get("_index")
        if cached is None:
            cached = {n: i for i, n in enumerate(self.names)}
            object.__setattr__(self, "_index", cached)
        return cached

    @property
    def attribute_keys(self) -> frozenset[str]:
        """Keys of the learner attributes that have a feature (`attr:key=value`)."""
        cached: frozenset[str] | None = self.__dict__.get("_attribute_keys")
        if cached is None:
            cached = frozenset(n[5:].split("=", 1)[0] for n in self.names if n.startswith("attr:"))
            object.__setattr__(self, "_attribute_keys", cached)
        return cached

    @classmethod
    def of(cls, token_lists: Iterable[Tokens]) -> FeatureSpace:
        return cls(tuple(sorted({name for tokens in token_lists for name, _ in tokens})))

    def matrix(self, token_lists: Sequence[Tokens]) -> sparse.csr_matrix:
        """One row per token list, weights normalized to sum 1 (repeated names add up)."""
        index = self.index
        indptr, cols, vals = [0], [], []
        for tokens in token_lists:
            row: dict[int, float] = {}
            for n, w in tokens:
                c = index.get(n)
                if c is not None and w > 0:
                    row[c] = row.get(c, 0.0) + w
            total = sum(row.values())
            for c in sorted(row):
                cols.append(c)
                vals.append(row[c] / total)
            indptr.append(len(cols))
        return sparse.csr_matrix(
            (np.asarray(vals, dtype=np.float32), np.asarray(cols, dtype=np.int32), np.asarray(indptr, dtype=np.int32)),
            shape=(len(token_lists), len(self.names)),
        )


def mastery_bucket(mastery: float) -> str:
    for upper, name in MASTERY_BUCKETS:
        if mastery < upper:
            return name
    return "hi"


def learner_tokens(
    learner: Learner | None,
    learner_id: str,
    mastery: Mapping[str, float],
    *,
    identity: bool,
    use_features: bool = True,
) -> Tokens:
    tokens: Tokens = []
    if use_features and learner is not None:
        if learner.country:
            tokens.append((f"country:{learner.country}", 1.0))
        for lang in learner.languages:
            tokens.append((f"lang:{lang.split('-')[0].lower()}", 0.5))
        if learner.program:
            tokens.append((f"program:{learner.program}", 1.0))
        if learner.target_role_id:
            tokens.append((f"role:{learner.target_role_id}", 1.0))
        tokens.append((f"hsk:{learner.chinese_level}", 0.5))
        for key, value in sorted(learner.attributes.items()):
            tokens.append((f"attr:{key}={value}", 0.5))
    if use_features:
        for skill_id, m in sorted(mastery.items()):
            tokens.append((f"m:{skill_id}:{mastery_bucket(m)}", 0.25))
    return _with_identity(tokens, f"id:{learner_id}", identity, "bias:learner")


def _with_identity(tokens: Tokens, name: str, identity: bool, fallback: str) -> Tokens:
    """Identity first (weight 1); a row with nothing gets a shared bias feature."""
    if identity:
        return [(name, 1.0), *tokens]
    return tokens or [(fallback, 1.0)]


def identity_heavy(tokens: Tokens) -> Tokens:
    """The identity carries half of a warm row's weight, so for ranking a learner's own history is
    not drowned by shared features (the success model keeps weight 1: it generalizes better)."""
    if tokens and tokens[0][0].startswith("id:"):
        rest = tokens[1:]
        return [(tokens[0][0], max(1.0, sum(w for _, w in rest))), *rest]
    return tokens


def module_tokens(module: Module, *, identity: bool, use_features: bool = True) -> Tokens:
    tokens: Tokens = []
    if not use_features:
        return _with_identity(tokens, f"id:{module.module_id}", identity, "bias:module")
    for sw in module.skills:
        tokens.append((f"skill:{sw.skill_id}", sw.weight))
    if module.track:
        tokens.append((f"track:{module.track}", 0.5))
    tokens.append((f"difficulty:{min(int(module.difficulty * 5), 4)}", 0.5))
    for lang in module.languages:
        tokens.append((f"lang:{lang.split('-')[0].lower()}", 0.25))
    return _with_identity(tokens, f"id:{module.module_id}", identity, "bias:module")


def as_float32(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    converted: sparse.csr_matrix = matrix.astype(np.float32)
    return converted
