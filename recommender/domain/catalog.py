"""The catalog: skills, modules with prerequisites, and target job roles.

`build_catalog` is the only way to make a `Catalog`, so every catalog in memory is valid:
references resolve, levels lie in [0, 1], and the prerequisite graph is acyclic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from recommender.domain.ids import id_violation, is_language_tag, normalize_language
from recommender.errors import FieldViolation, InvalidInput

MAX_HSK_LEVEL = 6


@dataclass(frozen=True)
class Skill:
    skill_id: str
    names: Mapping[str, str] = field(default_factory=dict)
    domain: str = ""


@dataclass(frozen=True)
class SkillWeight:
    skill_id: str
    weight: float = 1.0


@dataclass(frozen=True)
class Module:
    module_id: str
    titles: Mapping[str, str] = field(default_factory=dict)
    skills: tuple[SkillWeight, ...] = ()
    prerequisite_module_ids: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    track: str = ""
    difficulty: float = 0.5
    estimated_minutes: int = 60
    min_chinese_level: int = 0
    # the HSK level a learner who masters this module has reached (a module of the Chinese ladder);
    # 0: the module raises no level
    raises_chinese_level: int = 0

    @cached_property
    def skill_ids(self) -> tuple[str, ...]:
        return tuple(s.skill_id for s in self.skills)

    @cached_property
    def skill_weights(self) -> Mapping[str, float]:
        return {s.skill_id: s.weight for s in self.skills}


@dataclass(frozen=True)
class SkillRequirement:
    skill_id: str
    level: float
    weight: float = 1.0


@dataclass(frozen=True)
class TargetRole:
    role_id: str
    names: Mapping[str, str] = field(default_factory=dict)
    industry: str = ""
    requirements: tuple[SkillRequirement, ...] = ()
    shortage_index: float = 0.0


@dataclass(frozen=True)
class Catalog:
    """A validated catalog. Dicts are keyed by id; arrays index skills and modules by sorted id."""

    skills: Mapping[str, Skill]
    modules: Mapping[str, Module]
    roles: Mapping[str, TargetRole]
    revision: int = 0

    @cached_property
    def skill_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.skills))

    @cached_property
    def module_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.modules))

    @cached_property
    def skill_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.skill_ids)}

    @cached_property
    def module_index(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.module_ids)}

    @cached_property
    def module_skill_weights(self) -> npt.NDArray[np.float64]:
        """(n_modules, n_skills) weight of each skill a module teaches."""
        matrix = np.zeros((len(self.module_ids), len(self.skill_ids)))
        for m, module_id in enumerate(self.module_ids):
            for sw in self.modules[module_id].skills:
                matrix[m, self.skill_index[sw.skill_id]] = sw.weight
        return matrix

    def skill_weights_of(self, module_id: str) -> Mapping[str, float]:
        """The module's skill weights; empty for a module not in the catalog."""
        module = self.modules.get(module_id)
        return module.skill_weights if module is not None else {}

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Module ids, prerequisites first, ties broken by id (deterministic)."""
        order = _topological_order(self.modules)
        assert order is not None, "build_catalog guarantees an acyclic graph"
        return order

    def is_empty(self) -> bool:
        return not self.modules

    def skills_of(self, module_id: str) -> tuple[str, ...]:
        return self.modules[module_id].skill_ids


EMPTY_CATALOG = Catalog(skills={}, modules={}, roles={})


def build_catalog(
    skills: Iterable[Skill],
    modules: Iterable[Module],
    roles: Iterable[TargetRole],
    revision: int = 0,
) -> Catalog:
    """Validate and assemble a catalog; raise InvalidInput naming every problem found."""
    skills, modules, roles = list(skills), list(modules), list(roles)
    problems: list[FieldViolation] = []
    problems += _duplicates("skills", [s.skill_id for s in skills])
    problems += _duplicates("modules", [m.module_id for m in modules])
    problems += _duplicates("roles", [r.role_id for r in roles])
    skill_ids = {s.skill_id for s in skills}
    module_ids = {m.module_id for m in modules}

    for i, skill in enumerate(skills):
        _add(problems, id_violation(f"skills[{i}].skill_id", skill.skill_id))
    for i, module in enumerate(modules):
        problems += _module_problems(f"modules[{i}]", module, skill_ids, module_ids)
    for i, role in enumerate(roles):
        problems += _role_problems(f"roles[{i}]", role, skill_ids)
    if not problems:
        by_id = {m.module_id: m for m in modules}
        if _topological_order(by_id) is None:
            # learning order (each module is a prerequisite of the next), from the smallest id
            cycle = find_cycle(by_id)[::-1]
            start = cycle.index(min(cycle))
            cycle = cycle[start:] + cycle[:start]
            problems.append(
                FieldViolation(
                    "modules",
                    "prerequisite cycle (each is a prerequisite of the next): " + " -> ".join([*cycle, cycle[0]]),
                )
            )
    if problems:
        raise InvalidInput(problems)
    return Catalog(
        skills={s.skill_id: s for s in sorted(skills, key=lambda s: s.skill_id)},
        modules={m.module_id: _normalized(m) for m in sorted(modules, key=lambda m: m.module_id)},
        roles={r.role_id: r for r in sorted(roles, key=lambda r: r.role_id)},
        revision=revision,
    )


def merge_catalog(
    current: Catalog,
    skills: Iterable[Skill],
    modules: Iterable[Module],
    roles: Iterable[TargetRole],
    *,
    replace: bool,
) -> Catalog:
    """The catalog after an upsert: incoming entries replace same-id ones, or everything."""
    if replace:
        return build_catalog(skills, modules, roles, current.revision + 1)
    merged_skills = dict(current.skills) | {s.skill_id: s for s in skills}
    merged_modules = dict(current.modules) | {m.module_id: m for m in modules}
    merged_roles = dict(current.roles) | {r.role_id: r for r in roles}
    return build_catalog(merged_skills.values(), merged_modules.values(), merged_roles.values(), current.revision + 1)


def find_cycle(modules: Mapping[str, Module]) -> list[str]:
    """One prerequisite cycle as a list of module ids (empty when the graph is acyclic)."""
    return graph_cycle(
        {m: [p for p in module.prerequisite_module_ids if p in modules] for m, module in modules.items()}
    )


def graph_cycle(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """One cycle of a directed graph (node -> next nodes) as a list of nodes, found by a
    deterministic iterative depth-first search (sorted order); empty when there is none."""
    white, grey, black = 0, 1, 2
    successors = {node: sorted(set(nexts)) for node, nexts in edges.items()}
    color = dict.fromkeys(successors, white)
    for start in sorted(successors):
        if color[start] != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = grey
                path.append(node)
            nexts = successors.get(node, [])
            if i < len(nexts):
                stack.append((node, i + 1))
                nxt = nexts[i]
                if color.get(nxt, white) == grey:
                    return path[path.index(nxt) :]
                if color.get(nxt, white) == white:
                    color.setdefault(nxt, white)
                    successors.setdefault(nxt, [])
                    stack.append((nxt, 0))
            else:
                color[node] = black
                path.pop()
    return []


def _topological_order(modules: Mapping[str, Module]) -> tuple[str, ...] | None:
    import heapq

    indegree = dict.fromkeys(modules, 0)
    dependents: dict[str, list[str]] = {m: [] for m in modules}
    for module in modules.values():
        for p in set(module.prerequisite_module_ids):
            if p in modules:
                indegree[module.module_id] += 1
                dependents[p].append(module.module_id)
    ready = [m for m, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        m = heapq.heappop(ready)
        order.append(m)
        for d in dependents[m]:
            indegree[d] -= 1
            if indegree[d] == 0:
                heapq.heappush(ready, d)
    return tuple(order) if len(order) == len(modules) else None


def _normalized(module: Module) -> Module:
    langs = tuple(dict.fromkeys(normalize_language(x) for x in module.languages))
    prereqs = tuple(dict.fromkeys(module.prerequisite_module_ids))
    if langs == module.languages and prereqs == module.prerequisite_module_ids:
        return module
    return Module(
        module_id=module.module_id,
        titles=module.titles,
        skills=module.skills,
        prerequisite_module_ids=prereqs,
        languages=langs,
        track=module.track,
        difficulty=module.difficulty,
        estimated_minutes=module.estimated_minutes,
        min_chinese_level=module.min_chinese_level,
        raises_chinese_level=module.raises_chinese_level,
    )


def _module_problems(path: str, module: Module, skill_ids: set[str], module_ids: set[str]) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    _add(problems, id_violation(f"{path}.module_id", module.module_id))
    if not module.skills:
        problems.append(FieldViolation(f"{path}.skills", "a module must teach at least one skill"))
    for j, sw in enumerate(module.skills):
        if sw.skill_id not in skill_ids:
            problems.append(FieldViolation(f"{path}.skills[{j}].skill_id", f"unknown skill {sw.skill_id!r}"))
        if not (_finite(sw.weight) and 0 < sw.weight <= 1):
            problems.append(FieldViolation(f"{path}.skills[{j}].weight", "must be in (0, 1]"))
    for j, p in enumerate(module.prerequisite_module_ids):
        if p not in module_ids:
            problems.append(FieldViolation(f"{path}.prerequisite_module_ids[{j}]", f"unknown module {p!r}"))
        elif p == module.module_id:
            problems.append(FieldViolation(f"{path}.prerequisite_module_ids[{j}]", "a module cannot require itself"))
    if not module.languages:
        problems.append(FieldViolation(f"{path}.languages", "at least one language is required"))
    for j, lang in enumerate(module.languages):
        if not is_language_tag(lang):
            problems.append(FieldViolation(f"{path}.languages[{j}]", f"{lang!r} is not a BCP 47 tag"))
    if not (_finite(module.difficulty) and 0 <= module.difficulty <= 1):
        problems.append(FieldViolation(f"{path}.difficulty", "must be in [0, 1]"))
    if not 1 <= module.estimated_minutes <= 100_000:
        problems.append(FieldViolation(f"{path}.estimated_minutes", "must be in [1, 100000]"))
    if not 0 <= module.min_chinese_level <= MAX_HSK_LEVEL:
        problems.append(FieldViolation(f"{path}.min_chinese_level", "must be an HSK level 0-6"))
    if not 0 <= module.raises_chinese_level <= MAX_HSK_LEVEL:
        problems.append(FieldViolation(f"{path}.raises_chinese_level", "must be an HSK level 0-6 (0: none)"))
    elif 0 < module.raises_chinese_level <= module.min_chinese_level:
        problems.append(
            FieldViolation(
                f"{path}.raises_chinese_level",
                f"must exceed the module's min_chinese_level ({module.min_chinese_level}): "
                "a module raises a learner above the level it needs",
            )
        )
    return problems


def _role_problems(path: str, role: TargetRole, skill_ids: set[str]) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    _add(problems, id_violation(f"{path}.role_id", role.role_id))
    if not role.requirements:
        problems.append(FieldViolation(f"{path}.requirements", "a role needs at least one skill"))
    problems += _duplicates(f"{path}.requirements", [r.skill_id for r in role.requirements])
    for j, req in enumerate(role.requirements):
        if req.skill_id not in skill_ids:
            problems.append(FieldViolation(f"{path}.requirements[{j}].skill_id", f"unknown skill {req.skill_id!r}"))
        if not (_finite(req.level) and 0 < req.level <= 1):
            problems.append(FieldViolation(f"{path}.requirements[{j}].level", "must be in (0, 1]"))
        if not (_finite(req.weight) and req.weight > 0):
            problems.append(FieldViolation(f"{path}.requirements[{j}].weight", "must be > 0"))
    if not (_finite(role.shortage_index) and 0 <= role.shortage_index <= 1):
        problems.append(FieldViolation(f"{path}.shortage_index", "must be in [0, 1]"))
    return problems


def _duplicates(path: str, ids: list[str]) -> list[FieldViolation]:
    seen: set[str] = set()
    dupes = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
    return [FieldViolation(path, f"duplicate id {d!r}") for d in dupes]


def _add(problems: list[FieldViolation], violation: FieldViolation | None) -> None:
    if violation is not None:
        problems.append(violation)


def _finite(x: float) -> bool:
    return math.isfinite(x)
