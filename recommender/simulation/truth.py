"""Simulated learners with a hidden true mastery per skill.

Dynamics (all hidden from the service; the numbers are the demo world's `Dynamics()`, a world
family sets its own, simulation/families.py):
- success on a module: p = sigmoid(1.2 ability + 3 (0.6 m + 0.4 r) - 3 difficulty + 0.3), where
  m is the learner's true mastery of the module's skills (weighted mean) and r the true mastery of
  the skills of its prerequisite modules (1 when it has none); a score is 10 items ~ Binomial(10, p),
  from the mastery before the study (the demo) or after it (an end-of-module assessment);
- learning: each skill of the module gains weight * effect * learn_rate * (1 - m) * (0.3 + 0.7 r),
  so studying without the prerequisites teaches little;
- forgetting: true mastery decays exponentially at the learner's own rate (1/day).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recommender.domain.catalog import Catalog, Module, TargetRole
from recommender.domain.learner import Learner

FloatArray = npt.NDArray[np.float64]

COUNTRY_LANGUAGES: dict[str, tuple[str, ...]] = {
    "RW": ("fr", "en"),
    "MA": ("ar", "fr"),
    "ID": ("id", "en"),
    "TH": ("th", "en"),
    "VN": ("vi", "en"),
    "KH": ("en",),
    "KZ": ("ru", "en"),
    "EG": ("ar", "en"),
    "NG": ("en",),
    "LA": ("th", "en"),
}


@dataclass(frozen=True)
class HiddenLearner:
    learner: Learner
    ability: float
    learn_rate: float
    forget_per_day: float
    initial_mastery: FloatArray  # (n_skills,), catalog.skill_ids order


@dataclass(frozen=True)
class Dynamics:
    """How module scores and learning depend on the hidden state (the module docstring's
    equation; the defaults are the demo world's). `mastery_weight` against `ability_weight` and
    `score_items` is how informative a module score is about mastery."""

    ability_weight: float = 1.2  # logit per sd of general ability
    mastery_weight: float = 3.0  # logit between knowing nothing and everything the module draws on
    own_share: float = 0.6  # of that, the module's own skills; the rest its prerequisites' skills
    difficulty_weight: float = 3.0
    bias: float = 0.3
    score_items: int = 10  # a module score is the share right of this many items
    prerequisite_dependence: float = 0.7  # how much of a study's learning needs the prerequisites
    assessed_after_study: bool = False  # False: the score reflects the mastery before the study

    def __post_init__(self) -> None:
        if self.score_items < 1 or not 0 <= self.own_share <= 1 or not 0 <= self.prerequisite_dependence <= 1:
            raise ValueError("score_items >= 1, own_share and prerequisite_dependence in [0, 1]")


DEMO_DYNAMICS = Dynamics()


@dataclass(frozen=True)
class HiddenWorld:
    """The truth about a catalog: how much each module really teaches, and how learners in it
    score and learn. `variant_of` maps a module that is another language's copy of a concept's
    module (a Chinese-only variant) to that module: a fixed syllabus takes one of them."""

    catalog: Catalog
    module_effect: FloatArray  # (n_modules,), catalog.module_ids order
    dynamics: Dynamics = DEMO_DYNAMICS
    variant_of: Mapping[str, str] = field(default_factory=dict)

    def module(self, module_id: str) -> tuple[Module, float]:
        return self.catalog.modules[module_id], float(self.module_effect[self.catalog.module_index[module_id]])


def make_world(catalog: Catalog, rng: np.random.Generator) -> HiddenWorld:
    return HiddenWorld(catalog, rng.beta(6.0, 4.0, size=len(catalog.module_ids)) * 0.8)


def sample_learners(
    catalog: Catalog,
    count: int,
    rng: np.random.Generator,
    *,
    prefix: str = "learner",
    cohort_id: str = "",
) -> list[HiddenLearner]:
    """A cohort from COUNTRY_LANGUAGES with a role each, some Chinese, some prior experience."""
    countries = sorted(COUNTRY_LANGUAGES)
    roles = sorted(catalog.roles)
    learners: list[HiddenLearner] = []
    width = max(4, len(str(count)))
    for i in range(count):
        country = countries[int(rng.integers(len(countries)))]
        role_id = roles[int(rng.integers(len(roles)))]
        role = catalog.roles[role_id]
        hsk = int(rng.choice([0, 0, 1, 1, 2, 2, 3, 3, 4, 5]))
        languages = list(COUNTRY_LANGUAGES[country])
        if hsk >= 2:
            languages.append("zh")
        experience = int(rng.choice([0, 0, 0, 1, 2, 5]))
        mastery = initial_mastery(catalog, role, hsk, experience, rng)
        learner = Learner(
            learner_id=f"{prefix}-{i:0{width}d}",
            cohort_id=cohort_id,
            country=country,
            languages=tuple(languages),
            program=role.industry,
            target_role_id=role_id,
            chinese_level=hsk,
            weekly_minutes=int(rng.choice([240, 360, 480, 600, 900])),
            attributes={"experience_years": str(experience)},
        )
        ability, learn_rate, forget_per_day = learner_traits(rng)
        learners.append(HiddenLearner(learner, float(ability), float(learn_rate), float(forget_per_day), mastery))
    return learners


def initial_mastery(
    catalog: Catalog, role: TargetRole, hsk: int, experience: int, rng: np.random.Generator, size: int | None = None
) -> FloatArray:
    """True mastery at the start, given what the learner tells the platform (HSK level, years of
    experience): low on most skills, high on the Chinese of their HSK level, part of the way on the
    role's first `experience` requirements. (skills,) or, with `size`, (size, skills) draws."""
    shape = (len(catalog.skill_ids),) if size is None else (size, len(catalog.skill_ids))
    mastery = rng.beta(1.0, 9.0, size=shape)
    for level in range(1, hsk + 1):
        for sid in (f"zh-hsk{level}", "zh-pinyin"):
            if sid in catalog.skill_index:
                mastery[..., catalog.skill_index[sid]] = 0.85 + 0.1 * rng.random(size)
    if experience:
        for req in role.requirements[:experience]:
            mastery[..., catalog.skill_index[req.skill_id]] = min(0.4 + 0.1 * experience, 0.9) * rng.random(size)
    return np.asarray(mastery, dtype=np.float64)


def learner_traits(rng: np.random.Generator, size: int | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(ability, learn rate, forgetting per day): what no learner tells the platform."""
    return rng.normal(0.0, 1.0, size), rng.uniform(0.6, 1.4, size), rng.uniform(0.001, 0.006, size)


def forget(mastery: FloatArray, days: float, rate: float) -> FloatArray:
    return np.asarray(mastery * np.exp(-rate * max(days, 0.0)), dtype=np.float64)


def attempt(
    world: HiddenWorld,
    who: HiddenLearner,
    mastery: FloatArray,
    module_id: str,
    rng: np.random.Generator,
) -> tuple[float, FloatArray]:
    """One study-and-assessment of a module: (observed score, true mastery afterwards)."""
    p, updated = study(world, module_id, mastery[None, :], np.array([who.ability]), np.array([who.learn_rate]))
    items = world.dynamics.score_items
    score = float(rng.binomial(items, float(p[0]))) / items
    return score, updated[0]


def study(
    world: HiddenWorld, module_id: str, mastery: FloatArray, ability: FloatArray, learn_rate: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The dynamics of studying a module, for many learners (rows) at once: (P(success) on its
    assessment, from the mastery before the study or after it as the world's dynamics say;
    mastery after)."""
    catalog = world.catalog
    dyn = world.dynamics
    module, effect = world.module(module_id)
    idx = np.array([catalog.skill_index[s.skill_id] for s in module.skills])
    weights = np.array([s.weight for s in module.skills])
    prereq_idx = [
        catalog.skill_index[s.skill_id] for p in module.prerequisite_module_ids for s in catalog.modules[p].skills
    ]
    ready = mastery[:, prereq_idx].mean(axis=1) if prereq_idx else np.ones(len(mastery))
    updated = mastery.copy()
    dependence = dyn.prerequisite_dependence
    prepared = 1.0 - dependence + dependence * ready[:, None]  # demo: 0.3 + 0.7 r
    gain = weights * effect * learn_rate[:, None] * (1.0 - updated[:, idx]) * prepared
    updated[:, idx] = np.clip(updated[:, idx] + gain, 0.0, 1.0)
    known = np.average((updated if dyn.assessed_after_study else mastery)[:, idx], axis=1, weights=weights)
    logit = (
        dyn.ability_weight * ability
        + dyn.mastery_weight * (dyn.own_share * known + (1.0 - dyn.own_share) * ready)
        - dyn.difficulty_weight * module.difficulty
        + dyn.bias
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    return p, updated


CHECK_SLOPE = 8.0


def check_item_success(mastery: FloatArray | float, level: float) -> FloatArray:
    """P(right) on a check item of a skill at a role's level: passing mirrors being truly at level
    (one half exactly there), whatever the learner's general ability."""
    return np.asarray(1.0 / (1.0 + np.exp(-CHECK_SLOPE * (np.asarray(mastery) - level))), dtype=np.float64)


def true_readiness(role: TargetRole, catalog: Catalog, mastery: FloatArray) -> float:
    """Weighted share of the role's requirements the learner truly meets."""
    total = sum(r.weight for r in role.requirements)
    met = sum(r.weight for r in role.requirements if mastery[catalog.skill_index[r.skill_id]] >= r.level)
    return met / total if total else 1.0


def world_syllabus(world: HiddenWorld, role_id: str, learner: Learner) -> list[str]:
    """The role's fixed syllabus in this world: one module per concept, so a concept's
    Chinese-only variant is taken only by a learner who cannot take the module it copies."""
    syllabus = role_syllabus(world.catalog, role_id, learner)
    modules = world.catalog.modules
    return [
        m for m in syllabus
        if m not in world.variant_of or not can_take(modules[world.variant_of[m]], learner)
    ]  # fmt: skip


def role_syllabus(catalog: Catalog, role_id: str, learner: Learner) -> list[str]:
    """The fixed syllabus: every module teaching a role skill, with all its prerequisites, in
    prerequisite order, keeping only modules the learner can take (language, HSK)."""
    role = catalog.roles[role_id]
    needed = {r.skill_id for r in role.requirements}
    wanted: set[str] = set()
    stack = [m.module_id for m in catalog.modules.values() if needed & set(m.skill_ids)]
    while stack:
        module_id = stack.pop()
        if module_id in wanted:
            continue
        wanted.add(module_id)
        stack.extend(catalog.modules[module_id].prerequisite_module_ids)
    return [m for m in catalog.topological_order if m in wanted and can_take(catalog.modules[m], learner)]


def can_take(module: Module, learner: Learner) -> bool:
    """Whether the learner can follow the module: taught in one of their languages other than
    Chinese, or in Chinese at their HSK level (at least HSK 1 when they do not list Chinese: a
    learner who has climbed the Chinese ladder reads it)."""
    languages = set(learner.languages)
    if (languages - {"zh"}) & set(module.languages):
        return True
    floor = 0 if "zh" in languages else 1
    return "zh" in module.languages and learner.chinese_level >= max(module.min_chinese_level, floor)


def true_chinese_level(catalog: Catalog, level: int, mastery: FloatArray, passed: float) -> int:
    """The learner's HSK level given their true mastery: `level`, or the highest level a module of
    the Chinese ladder raises to whose skills they truly know at the pass mark `passed` (weighted
    mean), as an HSK test is passed."""
    for module in catalog.modules.values():
        if module.raises_chinese_level > level:
            idx = [catalog.skill_index[s.skill_id] for s in module.skills]
            if np.average(mastery[idx], weights=[s.weight for s in module.skills]) >= passed:
                level = module.raises_chinese_level
    return level


def history(
    world: HiddenWorld,
    who: HiddenLearner,
    modules: Sequence[str],
    days_between: Sequence[float],
    rng: np.random.Generator,
) -> list[tuple[str, float, float]]:
    """(module_id, score, day offset) for a learner working through `modules` in order."""
    mastery = who.initial_mastery.copy()
    day = 0.0
    out: list[tuple[str, float, float]] = []
    for module_id, gap in zip(modules, days_between, strict=True):
        mastery = forget(mastery, gap, who.forget_per_day)
        day += gap
        score, mastery = attempt(world, who, mastery, module_id, rng)
        out.append((module_id, score, day))
    return out
