"""Learner and module features for the hybrid model.

Learners: country, languages, program, target role, HSK level, the attributes a FeatureSchema
declares (and only those), and buckets of current mastery per practiced skill; warm learners (seen
in training) add an identity feature. An undeclared attribute never becomes a feature: a model fed
raw attribute values is an oracle for them (two otherwise equal learners score differently when
one holds a value some real learner has), and its folder would hold every value in clear.
Modules: skills (by weight), track, difficulty bucket, languages; warm modules add an identity.
Rows are normalized to sum 1, as LightFM recommends, so a learner's representation is the mean of
their feature embeddings: a learner the model never saw is scored from features alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from recommender.domain.catalog import Module
from recommender.domain.learner import Learner
from recommender.errors import FieldViolation, InvalidInput

Tokens = list[tuple[str, float]]
MASTERY_BUCKETS = ((0.4, "lo"), (0.8, "mid"), (1.01, "hi"))


MAX_DECLARED_VALUES = 256
# Attribute keys that name a person rather than describe them. Matched on the key lowered with
# every non-letter removed, so `E-Mail`, `national_id` and `phoneNumber` are all caught.
_IDENTIFIER_PARTS = ("email", "mail", "phone", "mobile", "telephone", "nationalid", "passport", "ssn",
                     "name", "address", "birth", "idnumber", "taxid", "iban", "username", "login")  # fmt: skip
_IDENTIFIER_SUFFIXES = ("id", "number", "no")


def identifier_reason(key: str) -> str:
    """Why an attribute key names a person ("" when it does not look like an identifier)."""
    folded = re.sub(r"[^a-z]", "", key.lower())
    for part in _IDENTIFIER_PARTS:
        if part in folded:
            return f"{key!r} looks like an identifier ({part}); identifiers never become model features"
    words = [w for w in re.split(r"[^a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower()) if w]
    if words and words[-1] in _IDENTIFIER_SUFFIXES:
        return f"{key!r} looks like an identifier (ends in {words[-1]!r}); identifiers never become model features"
    return ""


@dataclass(frozen=True)
class AttributeFeature:
    """One learner attribute that may become a model feature, and how.

    `categorical`: the value is a feature only if it is one of `values` (declared up front, so no
    free text can reach a model). `bucketed`: the value is read as a number and replaced by the
    index of its bucket between `bounds` (ascending); anything else is treated as missing."""

    key: str
    kind: str  # categorical | bucketed
    values: tuple[str, ...] = ()
    bounds: tuple[float, ...] = ()

    def token(self, value: str) -> str | None:
        if self.kind == "categorical":
            return f"attr:{self.key}={value}" if value in self.values else None
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        bucket = sum(1 for b in self.bounds if number >= b)
        return f"attr:{self.key}#{bucket}"


@dataclass(frozen=True)
class FeatureSchema:
    """The learner attributes that may become model features. Everything else a learner carries is
    stored and returned to its own tenant, and never reaches a model."""

    attributes: tuple[AttributeFeature, ...] = ()

    @property
    def by_key(self) -> dict[str, AttributeFeature]:
        cached: dict[str, AttributeFeature] | None = self.__dict__.get("_by_key")
        if cached is None:
            cached = {a.key: a for a in self.attributes}
            object.__setattr__(self, "_by_key", cached)
        return cached

    def tokens(self, attributes: Mapping[str, str]) -> list[str]:
        """The declared features of these attribute values, in key order."""
        found = []
        by_key = self.by_key
        for key in sorted(attributes):
            declared = by_key.get(key)
            if declared is not None:
                token = declared.token(attributes[key])
                if token is not None:
                    found.append(token)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": [
                {"key": a.key, "kind": a.kind, **({"values": list(a.values)} if a.kind == "categorical" else {}),
                 **({"bounds": list(a.bounds)} if a.kind == "bucketed" else {})}
                for a in self.attributes
            ]
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: object, where: str = "feature schema") -> FeatureSchema:
        """Parse and check a schema; InvalidInput names every problem (an identifier among them)."""
        problems: list[FieldViolation] = []
        items = doc.get("attributes", []) if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise InvalidInput.of(where, 'expected {"attributes": [{"key", "kind", ...}]}')
        declared: list[AttributeFeature] = []
        for i, item in enumerate(items):
            at = f"{where}.attributes[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
                problems.append(FieldViolation(at, "needs a non-empty string key"))
                continue
            key, kind = item["key"], item.get("kind")
            reason = identifier_reason(key)
            if reason:
                problems.append(FieldViolation(at, reason))
            if any(a.key == key for a in declared):
                problems.append(FieldViolation(at, f"{key!r} is declared twice"))
            if kind == "categorical":
                values = item.get("values")
                if not (isinstance(values, list) and values and all(isinstance(v, str) and v for v in values)):
                    problems.append(FieldViolation(at, "a categorical feature lists its values (non-empty strings)"))
                elif len(values) > MAX_DECLARED_VALUES:
                    problems.append(FieldViolation(at, f"at most {MAX_DECLARED_VALUES} values"))
                else:
                    declared.append(AttributeFeature(key, kind, values=tuple(dict.fromkeys(values))))
            elif kind == "bucketed":
                raw = item.get("bounds")
                bounds: list[Any] = raw if isinstance(raw, list) else []
                ok = bool(bounds) and all(
                    isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in bounds
                )
                if not ok or bounds != sorted(set(bounds)):
                    problems.append(FieldViolation(at, "a bucketed feature has ascending, distinct numeric bounds"))
                else:
                    declared.append(AttributeFeature(key, kind, bounds=tuple(float(b) for b in bounds)))
            else:
                problems.append(FieldViolation(at, f"kind must be categorical or bucketed, not {kind!r}"))
        if problems:
            raise InvalidInput(problems)
        return cls(tuple(declared))


NO_FEATURES = FeatureSchema()


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
    schema: FeatureSchema = NO_FEATURES,
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
        for token in schema.tokens(learner.attributes):
            tokens.append((token, 0.5))
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
