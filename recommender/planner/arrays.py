"""Catalog and knowledge-tracing data laid out as numpy arrays, built once per catalog revision
(and model), so planning a step is a handful of vectorized operations."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt
from scipy import sparse

from recommender.domain.catalog import Catalog
from recommender.kt.bkt import BKTModel
from recommender.planner.reasons import Renderer, locale_key

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# the Chinese level of a module no level opens (taught in none of the learner's languages nor in Chinese)
NEVER = 99


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
    raises_chinese_level: npt.NDArray[np.int64]  # (n_modules,) 0 for modules outside the Chinese ladder
    taught_in: dict[str, BoolArray]  # primary language subtag -> (n_modules,) mask
    depth: int  # modules on the longest prerequisite chain
    _views: dict[str, ModuleView] = field(default_factory=dict, compare=False, repr=False)
    _renderers: dict[str, Renderer] = field(default_factory=dict, compare=False, repr=False)
    # values the planner derives from these arrays and keeps (per-role planning arrays), keyed by
    # what else they depend on
    derived: dict[tuple[object, ...], object] = field(default_factory=dict, compare=False, repr=False)

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
            raises_chinese_level=np.array([m.raises_chinese_level for m in modules], dtype=np.int64),
            taught_in=taught_in,
            depth=max(chain.values(), default=0),
        )

    def role_view(self, role_id: str) -> ModuleView:
        """The modules that can matter for a role: those teaching its skills and every module
        they (transitively) require. Planning never needs the others, so each step works on this
        subset; built once per role."""
        view = self._views.get(role_id)
        if view is not None:
            return view
        catalog = self.catalog
        needed = [catalog.skill_index[r.skill_id] for r in catalog.roles[role_id].requirements]
        relevant = self._with_prerequisites(set(np.flatnonzero((self.weights[:, needed] > 0).any(axis=1)).tolist()))
        zh = self.taught_in.get("zh")
        if zh is not None and zh[sorted(relevant)].any():
            # a module taught in Chinese may be followed once the learner's Chinese is good enough:
            # the Chinese ladder (and what it requires) is part of the way to the role
            relevant = self._with_prerequisites(relevant | set(np.flatnonzero(self.raises_chinese_level).tolist()))
        modules = np.array(sorted(relevant), dtype=np.intp)  # ascending: ties still go to the smaller id
        unlock = self.unlock_share[modules][:, modules].toarray()
        # what lies behind each module, all prerequisite levels at once:
        # behind = U (direct + behind / 2)  =>  behind = (I - U / 2)^-1 U direct
        behind = np.linalg.solve(np.eye(len(modules)) - 0.5 * unlock, unlock) if len(modules) else unlock
        prereqs = self.prerequisites[modules][:, modules].tolil().rows
        width = max((len(r) for r in prereqs), default=0)
        prereq_pad = np.full((len(modules), max(width, 1)), len(modules), dtype=np.intp)
        dependents: list[list[int]] = [[] for _ in modules]
        for i, row in enumerate(prereqs):
            prereq_pad[i, : len(row)] = row
            for p in row:
                dependents[p].append(i)
        taught = [np.flatnonzero(self.weights[j]) for j in modules]
        skill_width = max((len(t) for t in taught), default=1)
        skill_pad = np.full((len(modules), skill_width), len(catalog.skill_ids), dtype=np.intp)
        for i, t in enumerate(taught):
            skill_pad[i, : len(t)] = t
        share_ext = np.c_[self.weight_share[modules], np.zeros(len(modules))]
        teaches_role = (self.weights[modules][:, needed] > 0).astype(np.float64)
        # a skill slot of a module that a (transitive) prerequisite of it teaches too: the module
        # asks for that skill beyond what the earlier module's assessment showed
        taught_by = self.weights[modules] > 0
        taught_before = ((behind > 0).T.astype(np.float64) @ taught_by.astype(np.float64)) > 0
        taught_before_ext = np.c_[taught_before, np.zeros(len(modules), dtype=bool)]
        view = ModuleView(
            modules=modules,
            module_ids=tuple(catalog.module_ids[j] for j in modules),
            weights=self.weights[modules],
            minutes=self.minutes[modules],
            difficulty=self.difficulty[modules],
            depth=self.depth,
            behind=behind,
            teaches_role=teaches_role,
            behind_teaches=behind @ teaches_role,
            prereq_pad=prereq_pad,
            skill_pad=skill_pad,
            skill_lists=tuple(tuple(t.tolist()) for t in taught),
            pad_weights=np.take_along_axis(np.c_[self.weights[modules], np.zeros(len(modules))], skill_pad, axis=1),
            dependents=tuple(tuple(sorted(d)) for d in dependents),
            pad_share=np.take_along_axis(share_ext, skill_pad, axis=1),
            role_relevance=self.weights[modules][:, needed].sum(axis=1),
            primary_languages=tuple(
                frozenset(primary_language(x) for x in catalog.modules[catalog.module_ids[j]].languages)
                for j in modules
            ),
            position={catalog.module_ids[j]: i for i, j in enumerate(modules)},
            raises_chinese_level=self.raises_chinese_level[modules],
            pad_taught_before=np.take_along_axis(taught_before_ext, skill_pad, axis=1),
        )
        self._views[role_id] = view
        return view

    def _with_prerequisites(self, modules: set[int]) -> set[int]:
        """`modules` and every module they (transitively) require."""
        catalog = self.catalog
        relevant = set(modules)
        stack = list(relevant)
        while stack:
            j = stack.pop()
            for p in catalog.modules[catalog.module_ids[j]].prerequisite_module_ids:
                k = catalog.module_index[p]
                if k not in relevant:
                    relevant.add(k)
                    stack.append(k)
        return relevant

    def renderer(self, locale: str) -> Renderer:
        key = locale_key(locale)
        found = self._renderers.get(key)
        if found is None:
            found = self._renderers[key] = Renderer(self.catalog, key)
        return found

    def chinese_gate(self, languages: tuple[str, ...]) -> IntArray:
        """(n_modules,): the HSK level at which a learner with these languages can follow each
        module. 0 for a module taught in one of their languages other than Chinese; for one taught
        in Chinese and none of those, its min_chinese_level, and at least HSK 1 for a learner who
        does not list Chinese (they read Chinese once they reach HSK 1: Chinese is a route, learnt
        on the Chinese ladder); NEVER for the others. Built once per set of languages."""
        primaries = frozenset(primary_language(x) for x in languages)
        key = ("chinese-gate", primaries)
        found = self.derived.get(key)
        if found is not None:
            return cast(IntArray, found)
        n = len(self.minutes)
        other = np.zeros(n, dtype=bool)
        for lang in primaries - {"zh"}:
            mask = self.taught_in.get(lang)
            if mask is not None:
                other |= mask
        zh = self.taught_in.get("zh", np.zeros(n, dtype=bool))
        floor = 0 if "zh" in primaries else 1
        gate = np.where(other, 0, np.where(zh, np.maximum(self.min_chinese_level, floor), NEVER)).astype(np.int64)
        gate.setflags(write=False)
        self.derived[key] = gate
        return gate

    def language_mask(self, languages: tuple[str, ...], chinese_level: int) -> BoolArray:
        """Modules a learner at this HSK level can follow (chinese_gate)."""
        return np.asarray(self.chinese_gate(languages) <= chinese_level)

    def taught_mask(self, languages: tuple[str, ...]) -> BoolArray:
        """Modules taught in one of these languages, whatever the learner's Chinese."""
        taught = np.zeros(len(self.minutes), dtype=bool)
        for lang in {primary_language(x) for x in languages}:
            mask = self.taught_in.get(lang)
            if mask is not None:
                taught |= mask
        return taught

    def _ladder(self) -> tuple[IntArray, npt.NDArray[np.intp], FloatArray]:
        """The Chinese ladder's modules: the level each raises to, their skills padded with the
        sentinel skill (as ModuleView.skill_pad) and each skill's share of the module (0 in padding)."""
        found = self.derived.get(("chinese-ladder",))
        if found is None:
            ladder = np.flatnonzero(self.raises_chinese_level)
            taught = [np.flatnonzero(self.weights[j]) for j in ladder]
            width = max((len(t) for t in taught), default=1)
            pad = np.full((len(ladder), width), len(self.catalog.skill_ids), dtype=np.intp)
            share = np.zeros((len(ladder), width))
            for i, (j, t) in enumerate(zip(ladder, taught, strict=True)):
                pad[i, : len(t)] = t
                share[i, : len(t)] = self.weight_share[j, t]
            found = self.derived[("chinese-ladder",)] = (self.raises_chinese_level[ladder], pad, share)
        return cast(tuple[IntArray, npt.NDArray[np.intp], FloatArray], found)

    def shown_chinese_level(self, mastery: FloatArray, threshold: float) -> IntArray:
        """(learners,): the HSK level each learner's results show: the highest raises_chinese_level
        of a module they have mastered (its skills' mastery averaged by their weight in it, at the
        planner's one confidence, as a prerequisite is read), 0 when none. `mastery` is (learners,
        skills + a sentinel column), the planner's layout; each row is summed on its own, so a
        learner's level does not depend on the batch."""
        raises, pad, share = self._ladder()
        if not len(raises):
            return np.zeros(len(mastery), dtype=np.int64)
        known = (share * np.take(mastery, pad, axis=1)).sum(axis=2)
        return np.asarray(np.where(known >= threshold - 1e-9, raises, 0).max(axis=1, initial=0), dtype=np.int64)


@dataclass(frozen=True)
class ModuleView:
    """A subset of the catalog's modules (indexes into it in `modules`), with the same arrays."""

    modules: npt.NDArray[np.intp]
    module_ids: tuple[str, ...]
    weights: FloatArray
    minutes: FloatArray
    difficulty: FloatArray
    depth: int
    behind: FloatArray  # (r, r): discounted share of each later module's value behind each module
    teaches_role: FloatArray  # (r, role requirements): 1 where a module teaches a skill the role needs
    behind_teaches: FloatArray  # (r, role requirements): behind @ teaches_role
    prereq_pad: npt.NDArray[np.intp]  # (r, max prerequisites), padded with r (an always-satisfied slot)
    skill_pad: npt.NDArray[np.intp]  # (r, max skills per module), padded with n_skills
    skill_lists: tuple[tuple[int, ...], ...]  # each module's skills, unpadded (skill_pad's leading entries)
    pad_weights: FloatArray  # (r, max skills per module): the weight taught, 0 in padding
    dependents: tuple[tuple[int, ...], ...]  # modules (view indexes) each module is a prerequisite of
    pad_share: FloatArray  # (r, max skills per module): weight_share in skill_pad layout, 0 in padding
    role_relevance: FloatArray  # (r,) total weight of the role's skills each module teaches
    primary_languages: tuple[frozenset[str], ...]  # primary language subtags each module is taught in
    position: dict[str, int]  # module id -> view index
    raises_chinese_level: npt.NDArray[np.int64]  # (r,) the HSK level each module raises a learner to, else 0
    # (r, max skills per module): the slot's skill is taught by a prerequisite of the module too
    # (the catalog's levels of one skill: 101, 201, 301); False in padding
    pad_taught_before: BoolArray

    @functools.cached_property
    def prereq_lists(self) -> tuple[tuple[int, ...], ...]:
        """Each module's prerequisites (view indexes), unpadded: prereq_pad's rows for Python loops."""
        n = len(self.module_ids)
        return tuple(tuple(p for p in row if p < n) for row in self.prereq_pad.tolist())

    @property
    def builds_on_own_skill(self) -> BoolArray:
        """(r,) modules a prerequisite of which teaches one of their skills."""
        return np.asarray(self.pad_taught_before.any(axis=1))


@dataclass(frozen=True)
class SkillParamArrays:
    """BKT parameters per skill in catalog.skill_ids order, and each module's own learning rate
    per skill where training fitted one."""

    prior: FloatArray
    learn: FloatArray
    guess: FloatArray
    slip: FloatArray
    module_learn: Mapping[tuple[int, int], float] = field(default_factory=dict)  # (module, skill) index

    @classmethod
    def build(cls, catalog: Catalog, model: BKTModel) -> SkillParamArrays:
        params = [model.of(s) for s in catalog.skill_ids]
        return cls(
            prior=np.array([p.prior for p in params]),
            learn=np.array([p.learn for p in params]),
            guess=np.array([p.guess for p in params]),
            slip=np.array([p.slip for p in params]),
            module_learn={
                (catalog.module_index[m], catalog.skill_index[s]): rate
                for (m, s), rate in model.module_learn.items()
                if m in catalog.module_index and s in catalog.skill_index
            },
        )

    def learn_pads(self, view: ModuleView) -> FloatArray:
        """P(learn) of each (view module, padded skill) pair: the module's own rate for the skill
        where fitted, else the skill's; 0 in padding."""
        pads = np.append(self.learn, 0.0)[view.skill_pad]
        if self.module_learn:
            for j, (module, skills) in enumerate(zip(view.modules.tolist(), view.skill_lists, strict=True)):
                for slot, skill in enumerate(skills):
                    found = self.module_learn.get((module, skill))
                    if found is not None:
                        pads[j, slot] = found
        return np.asarray(pads, dtype=np.float64)


def primary_language(tag: str) -> str:
    return tag.split("-", 1)[0].lower()
