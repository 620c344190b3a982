"""World families: hidden-truth worlds that differ in what decides whether adaptive paths pay.

A default chosen on one world can be an accident of that world. A family is a recipe for worlds
(a catalog generator plus the hidden dynamics and the population of learners), so a claim can be
checked on worlds that played no part in choosing anything: every family is marked `tuning` (a
default may be chosen by looking at it) or `held_out` (only ever reported).

What the families vary, and why each matters to an adaptive path:
- how informative a module score is (`Dynamics`: the logit gap between knowing and not knowing the
  module's concept, against general ability and the number of items): the service can only skip
  what its evidence tells it is known;
- learning speed (mean) and its spread between learners: with a narrow spread a population
  default fits everyone, with a wide one it fits nobody;
- how much modules differ in what they teach (the spread of the module effects): per-module
  effects are then worth learning from data;
- prior knowledge, from none to most of the concepts: what a placement test can save;
- the graph: shallow and wide or deep and narrow random DAGs, or real prerequisite graphs
  (Junyi's knowledge map), with one to three skills per module and Chinese-only variants;
- forgetting, from none to strong.

Everything here is pure: randomness comes in as a Generator, and the only file read is the
prerequisite graph the caller names (`read_concept_graph`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from recommender.domain.catalog import (
    Catalog,
    Module,
    Skill,
    SkillRequirement,
    SkillWeight,
    TargetRole,
    build_catalog,
)
from recommender.domain.learner import Learner
from recommender.simulation.truth import COUNTRY_LANGUAGES, Dynamics, FloatArray, HiddenLearner, HiddenWorld

Split = Literal["tuning", "held_out"]
CHINESE_VARIANT_LEVEL = 3  # HSK level a Chinese-only variant asks of a learner who has no other language in it
ROLE_LEVELS = (0.5, 0.8)  # a role requires each of its concepts at a level drawn in this range


@dataclass(frozen=True)
class RandomDag:
    """A random prerequisite graph: `concepts` concepts in `layers` layers (the depth), each
    concept past the first layer with `parents` (min, max) prerequisites, mostly in the layer just
    before it. Few layers and many parents: shallow and wide; many layers and one or two parents:
    deep and narrow."""

    concepts: int
    layers: int
    parents: tuple[int, int]
    skills_per_module: int = 1  # the concept's own skill, then secondary skills of its prerequisites
    secondary_weight: float = 0.3  # the weight of each secondary skill (the own skill weighs 1)
    chinese_variants: float = 0.0  # share of concepts that also have a Chinese-only module
    roles: int = 3
    requirements: int = 8  # concepts each role requires


@dataclass(frozen=True)
class ConceptGraph:
    """A real prerequisite graph: concept -> (prerequisites, topic), cycles and self-loops
    already broken. Read with `read_concept_graph`."""

    prerequisites: Mapping[str, tuple[str, ...]]
    topic: Mapping[str, str]


@dataclass(frozen=True)
class JunyiSubgraph:
    """A catalog on Junyi's knowledge map: the exercises of `topics` and all their prerequisites,
    one concept each; one role per topic, requiring `requirements` of the topic's exercises
    (deeper ones more often)."""

    topics: tuple[str, ...]
    skills_per_module: int = 1
    secondary_weight: float = 0.3
    chinese_variants: float = 0.0
    requirements: int = 8


@dataclass(frozen=True)
class WorldFamily:
    """A recipe for hidden worlds. Ranges: `learn_rate` is (mean, sd of its logarithm), each
    learner's rate drawn lognormal with that mean; `module_effect` is (mean, concentration) of the
    Beta each module's effect is drawn from (low concentration: modules differ a lot);
    `prior_known` is (mean, concentration) of the Beta of the share of concepts a learner knows at
    the start (the easier, shallower concepts first); `forget_per_day` a uniform range."""

    name: str
    split: Split
    description: str
    dynamics: Dynamics
    learn_rate: tuple[float, float]
    module_effect: tuple[float, float]
    prior_known: tuple[float, float]
    forget_per_day: tuple[float, float]
    graph: RandomDag | JunyiSubgraph
    chinese_share: float = 0.3  # learners who read Chinese well enough for the Chinese-only variants

    @property
    def informative(self) -> bool:
        """Whether module scores are informative: at average ability and difficulty, a learner who
        knows the concept gets at least 3/4 of the items right and one who does not (prerequisites
        known) at most 1/3."""
        known, unknown = score_contrast(self.dynamics)
        return known >= 0.75 and unknown <= 1 / 3


def score_contrast(dynamics: Dynamics, difficulty: float = 0.5) -> tuple[float, float]:
    """P(right) on a module item for an average-ability learner who knows its concept fully,
    and for one who knows none of it (its prerequisites known in both cases)."""

    def p(known: float) -> float:
        logit = (
            dynamics.mastery_weight * (dynamics.own_share * known + 1.0 - dynamics.own_share)
            - dynamics.difficulty_weight * difficulty
            + dynamics.bias
        )
        return 1.0 / (1.0 + math.exp(-logit))

    return p(1.0), p(0.0)


# a family's module assessment is taken at the module's end: the score reflects what the study taught
WEAK = Dynamics(1.4, 2.5, own_share=0.6, difficulty_weight=2.0, bias=0.0, score_items=5, assessed_after_study=True)
MEDIUM = Dynamics(0.8, 4.5, own_share=0.75, difficulty_weight=2.0, bias=-1.0, score_items=8, assessed_after_study=True)
STRONG = Dynamics(0.3, 7.0, own_share=0.85, difficulty_weight=1.0, bias=-2.5, score_items=12, assessed_after_study=True)

TUNING_ALGEBRA = ("quadtratics", "polynomials", "conic-sections")
HELD_OUT_ALGEBRA = ("algebra-functions", "exponents-radicals", "absolute-value", "systems-of-eq-and-ineq")

FAMILIES: tuple[WorldFamily, ...] = (
    WorldFamily(
        name="broad-medium",
        split="tuning",
        description="shallow wide DAG, three skills a module, medium scores, some prior knowledge",
        dynamics=MEDIUM,
        learn_rate=(1.1, 0.15),
        module_effect=(0.8, 20.0),
        prior_known=(0.3, 4.0),
        forget_per_day=(0.0005, 0.002),
        graph=RandomDag(concepts=120, layers=5, parents=(1, 3), skills_per_module=3, chinese_variants=0.15),
    ),
    WorldFamily(
        name="deep-weak",
        split="tuning",
        description="deep narrow DAG, two skills a module, weak scores, slow and varied learners, nothing known",
        dynamics=WEAK,
        learn_rate=(0.8, 0.5),
        module_effect=(0.75, 4.0),
        prior_known=(0.0, 1.0),
        forget_per_day=(0.0, 0.0),
        graph=RandomDag(concepts=100, layers=20, parents=(1, 1), skills_per_module=2),
    ),
    WorldFamily(
        name="junyi-strong",
        split="tuning",
        description="Junyi algebra graph, strong scores, fast learners, most known, strong forgetting",
        dynamics=STRONG,
        learn_rate=(1.4, 0.1),
        module_effect=(0.8, 10.0),
        prior_known=(0.6, 6.0),
        forget_per_day=(0.001, 0.004),
        graph=JunyiSubgraph(topics=TUNING_ALGEBRA, chinese_variants=0.1),
    ),
    WorldFamily(
        name="junyi-weak",
        split="held_out",
        description="Junyi algebra graph (other topics), weak scores, varied learners, some known",
        dynamics=WEAK,
        learn_rate=(1.1, 0.5),
        module_effect=(0.75, 6.0),
        prior_known=(0.4, 3.0),
        forget_per_day=(0.0005, 0.002),
        graph=JunyiSubgraph(topics=HELD_OUT_ALGEBRA, chinese_variants=0.2),
    ),
    WorldFamily(
        name="wide-strong",
        split="held_out",
        description="shallow very wide DAG, three skills a module, strong scores, fast varied learners, nothing known",
        dynamics=STRONG,
        learn_rate=(1.4, 0.5),
        module_effect=(0.8, 3.0),
        prior_known=(0.0, 1.0),
        forget_per_day=(0.0005, 0.002),
        graph=RandomDag(concepts=196, layers=4, parents=(1, 3), skills_per_module=3, secondary_weight=0.4),
    ),
    WorldFamily(
        name="deep-medium",
        split="held_out",
        description="deep narrow DAG, two skills a module, medium scores, slow learners, most known, strong forgetting",
        dynamics=MEDIUM,
        learn_rate=(0.8, 0.1),
        module_effect=(0.8, 20.0),
        prior_known=(0.7, 5.0),
        forget_per_day=(0.001, 0.004),
        graph=RandomDag(concepts=88, layers=14, parents=(1, 2), skills_per_module=2, chinese_variants=0.2),
    ),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


def select_families(selection: str) -> tuple[WorldFamily, ...]:
    """`all`, `tuning`, `held-out` or one family's name."""
    if selection == "all":
        return FAMILIES
    if selection in ("tuning", "held-out", "held_out"):
        split = "tuning" if selection == "tuning" else "held_out"
        return tuple(f for f in FAMILIES if f.split == split)
    for family in FAMILIES:
        if family.name == selection:
            return (family,)
    raise ValueError(f"unknown family {selection!r} (known: {', '.join(FAMILY_NAMES)}; or all, tuning, held-out)")


# catalogs ---------------------------------------------------------------------------------------


def default_concept_graph_path() -> Path:
    """The Junyi excerpt shipped with the package (the algebra area of the knowledge map)."""
    return Path(str(resources.files("recommender") / "data" / "junyi_algebra_graph.json"))


def read_concept_graph(path: Path) -> ConceptGraph:
    """A prerequisite graph from the shipped excerpt (JSON: concepts with name, prerequisites,
    topic) or from Junyi's own exercise table (`junyi_Exercise_table.csv`, the whole knowledge
    map). Unknown prerequisites, self-loops and cycles are dropped (a cycle loses the edge that
    closes it in a depth-first search in name order), so the result is a DAG."""
    rows: list[tuple[str, list[str], str]] = []
    if path.suffix == ".json":
        for c in json.loads(path.read_text(encoding="utf-8-sig"))["concepts"]:
            rows.append((c["name"], list(c["prerequisites"]), c.get("topic") or "misc"))
    else:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for r in csv.DictReader(handle):
                prereqs = [p.strip() for p in (r.get("prerequisites") or "").split(",") if p.strip()]
                rows.append((r["name"], prereqs, r.get("topic") or "misc"))
    topic: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    for name, prereqs, t in rows:
        if name not in topic:  # a repeated row: the first one counts
            topic[name] = t
            parents[name] = prereqs
    edges = {n: sorted({p for p in ps if p in topic and p != n}) for n, ps in parents.items()}
    return ConceptGraph(_acyclic(edges), topic)


def _acyclic(parents: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """Drop each edge that closes a cycle (a back edge of a depth-first search in name order)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    kept: dict[str, list[str]] = {n: [] for n in parents}
    for root in sorted(parents):
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, k = stack.pop()
            ps = parents[node]
            if k < len(ps):
                stack.append((node, k + 1))
                p = ps[k]
                if state.get(p) == 1:
                    continue  # a back edge: it closes a cycle
                kept[node].append(p)
                if p not in state:
                    state[p] = 1
                    stack.append((p, 0))
            else:
                state[node] = 2
    return {n: tuple(sorted(ps)) for n, ps in kept.items()}


@dataclass(frozen=True)
class _Concepts:
    """The graph a catalog is built on: concept ids in a topological order, their prerequisites,
    depth, and the roles' required concepts."""

    order: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    depth: Mapping[str, int]
    roles: tuple[tuple[str, tuple[str, ...]], ...]  # (role id, required concepts)


def build_world(family: WorldFamily, rng: np.random.Generator, graph: ConceptGraph | None = None) -> HiddenWorld:
    """One world of the family: its catalog (validated: acyclic, every reference resolves) and
    each module's hidden effect. A Junyi family is built on `graph` (`read_concept_graph`)."""
    spec = family.graph
    if isinstance(spec, RandomDag):
        concepts = _random_dag(spec, rng)
    elif graph is None:
        raise ValueError(f"family {family.name} is built on a prerequisite graph: pass read_concept_graph(...)")
    else:
        concepts = _junyi_concepts(spec, graph, rng)
    skills_per_module, secondary, variants = spec.skills_per_module, spec.secondary_weight, spec.chinese_variants
    deepest = max(concepts.depth.values()) or 1
    skills = [Skill(c, {"en": f"concept {c}"}, family.name) for c in concepts.order]
    modules: list[Module] = []
    variant_of: dict[str, str] = {}
    for c in concepts.order:
        own = [SkillWeight(c, 1.0)]
        others = list(concepts.parents[c])
        rng.shuffle(others)
        own += [SkillWeight(p, secondary) for p in others[: skills_per_module - 1]]
        base = Module(
            module_id=f"m-{c}",
            titles={"en": f"Module {c}"},
            skills=tuple(own),
            prerequisite_module_ids=tuple(f"m-{p}" for p in concepts.parents[c]),
            languages=("en",),
            track=family.name,
            difficulty=round(0.2 + 0.6 * concepts.depth[c] / deepest, 3),
            estimated_minutes=60,
        )
        modules.append(base)
        if rng.random() < variants:
            variant = replace(
                base, module_id=f"m-{c}-zh", titles={"zh": f"模块 {c}"}, languages=("zh",),
                min_chinese_level=CHINESE_VARIANT_LEVEL,
            )  # fmt: skip
            modules.append(variant)
            variant_of[variant.module_id] = base.module_id
    low, high = ROLE_LEVELS
    roles = [
        TargetRole(
            role_id=role_id,
            names={"en": f"{family.name} role {role_id}"},
            industry=family.name,
            requirements=tuple(
                SkillRequirement(c, round(float(rng.uniform(low, high)) * 20) / 20, 1.0) for c in required
            ),
        )
        for role_id, required in concepts.roles
    ]
    catalog = build_catalog(skills, modules, roles)
    mean, concentration = family.module_effect
    effects = rng.beta(mean * concentration, (1 - mean) * concentration, size=len(catalog.module_ids))
    return HiddenWorld(catalog, np.asarray(effects, dtype=np.float64), family.dynamics, variant_of)


def _random_dag(spec: RandomDag, rng: np.random.Generator) -> _Concepts:
    sizes = np.full(spec.layers, spec.concepts // spec.layers)
    sizes[: spec.concepts % spec.layers] += 1
    layers: list[list[str]] = []
    k = 0
    for size in sizes:
        layers.append([f"c{k + j:03d}" for j in range(int(size))])
        k += int(size)
    parents: dict[str, tuple[str, ...]] = {}
    depth: dict[str, int] = {}
    for d, layer in enumerate(layers):
        for c in layer:
            depth[c] = d
            if d == 0:
                parents[c] = ()
                continue
            low, high = spec.parents
            wanted = int(rng.integers(low, high + 1))
            # mostly the layer just before (so depth is real), now and then an earlier one
            pool = layers[d - 1] if d == 1 or rng.random() < 0.8 else layers[d - 1] + layers[int(rng.integers(d - 1))]
            chosen = rng.choice(len(pool), size=min(wanted, len(pool)), replace=False)
            parents[c] = tuple(sorted({pool[int(i)] for i in chosen}))
    order = tuple(c for layer in layers for c in layer)
    deep = [c for c in order if depth[c] >= max(1, math.ceil(0.6 * (spec.layers - 1)))]
    roles = []
    for r in range(spec.roles):
        goal = deep[int(rng.integers(len(deep)))]
        members = {goal} | _ancestors(goal, parents)
        # a shallow graph gives a goal few prerequisites: the role then also wants other deep concepts
        while len(members) < spec.requirements:
            other = deep[int(rng.integers(len(deep)))]
            members |= {other} | _ancestors(other, parents)
        roles.append((f"role-{r + 1}", _required(goal, sorted(members), parents, depth, spec.requirements, rng)))
    return _Concepts(order, parents, depth, tuple(roles))


def _ancestors(concept: str, parents: Mapping[str, tuple[str, ...]]) -> set[str]:
    out: set[str] = set()
    stack = [concept]
    while stack:
        for p in parents[stack.pop()]:
            if p not in out:
                out.add(p)
                stack.append(p)
    return out


def _required(
    goal: str,
    members: Sequence[str],
    parents: Mapping[str, tuple[str, ...]],
    depth: Mapping[str, int],
    count: int,
    rng: np.random.Generator,
) -> tuple[str, ...]:
    """A role's concepts: `goal`, then others drawn from `members` and the goal's prerequisites
    (deeper concepts more likely), `count` in all when there are that many."""
    pool = sorted((set(members) | _ancestors(goal, parents)) - {goal})
    weights = np.array([1.0 + depth[c] for c in pool])
    take = min(count - 1, len(pool))
    picked = rng.choice(len(pool), size=take, replace=False, p=weights / weights.sum()) if take else np.array([], int)
    return tuple(sorted({goal, *(pool[int(i)] for i in picked)}))


def _junyi_concepts(spec: JunyiSubgraph, graph: ConceptGraph, rng: np.random.Generator) -> _Concepts:
    members = {t: sorted(n for n, topic in graph.topic.items() if topic == t) for t in spec.topics}
    missing = [t for t, names in members.items() if not names]
    if missing:
        raise ValueError(f"the concept graph has no exercise in topic(s) {', '.join(missing)}")
    wanted: set[str] = set()
    for names in members.values():
        for n in names:
            wanted |= {n} | _ancestors(n, graph.prerequisites)
    ident = {n: "jy-" + "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in n)
             for n in wanted}  # fmt: skip
    if len(set(ident.values())) != len(ident):
        raise ValueError("two exercise names of the graph sanitize to the same id")
    parents = {ident[n]: tuple(sorted(ident[p] for p in graph.prerequisites[n])) for n in wanted}
    depth: dict[str, int] = {}

    def level(c: str) -> int:
        if c not in depth:
            depth[c] = 1 + max((level(p) for p in parents[c]), default=-1)
        return depth[c]

    for c in sorted(parents):
        level(c)
    order = tuple(sorted(parents, key=lambda c: (depth[c], c)))
    roles = []
    for t, names in members.items():
        ids = sorted((ident[n] for n in names), key=lambda c: (depth[c], c))
        deepest = ids[-max(1, len(ids) // 3) :]  # the goal: one of the topic's deepest third
        goal = deepest[int(rng.integers(len(deepest)))]
        roles.append((f"role-{t}", _required(goal, ids, parents, depth, spec.requirements, rng)))
    return _Concepts(order, parents, depth, tuple(roles))


# learners ---------------------------------------------------------------------------------------


def sample_family_learners(
    family: WorldFamily, world: HiddenWorld, count: int, rng: np.random.Generator, *, prefix: str = "learner"
) -> list[HiddenLearner]:
    """A cohort of the family's population, each with a role of the world's catalog. Every learner
    reads English; `chinese_share` of them also Chinese at HSK 3-6 (the Chinese-only variants)."""
    catalog = world.catalog
    countries = sorted(COUNTRY_LANGUAGES)
    roles = sorted(catalog.roles)
    rank = _depth_rank(catalog)
    width = max(4, len(str(count)))
    mean_learn, spread = family.learn_rate
    forget_low, forget_high = family.forget_per_day
    learners: list[HiddenLearner] = []
    for i in range(count):
        role_id = roles[int(rng.integers(len(roles)))]
        chinese = rng.random() < family.chinese_share
        hsk = int(rng.integers(CHINESE_VARIANT_LEVEL, 7)) if chinese else int(rng.integers(0, CHINESE_VARIANT_LEVEL))
        learner = Learner(
            learner_id=f"{prefix}-{i:0{width}d}",
            country=countries[int(rng.integers(len(countries)))],
            languages=("en", "zh") if chinese else ("en",),
            program=catalog.roles[role_id].industry,
            target_role_id=role_id,
            chinese_level=hsk,
            weekly_minutes=int(rng.choice([240, 360, 480, 600, 900])),
        )
        ability = float(rng.normal())
        learn_rate = float(np.clip(mean_learn * math.exp(spread * rng.normal() - spread**2 / 2), 0.05, 3.0))
        forget_per_day = float(rng.uniform(forget_low, forget_high))
        mastery = prior_mastery(family, rank, rng)
        learners.append(HiddenLearner(learner, ability, learn_rate, forget_per_day, mastery))
    return learners


def _depth_rank(catalog: Catalog) -> FloatArray:
    """Each skill's place among the concepts from easiest (0) to hardest (1): the difficulty of
    its own module, so a learner who knows a concept mostly knows its prerequisites too."""
    difficulty = np.zeros(len(catalog.skill_ids))
    for module in catalog.modules.values():
        difficulty[catalog.skill_index[module.skills[0].skill_id]] = module.difficulty
    order = np.argsort(difficulty + 1e-6 * np.arange(len(difficulty)), kind="stable")
    rank = np.empty(len(order))
    rank[order] = (np.arange(len(order)) + 0.5) / len(order)
    return rank


def prior_mastery(family: WorldFamily, rank: FloatArray, rng: np.random.Generator) -> FloatArray:
    """True mastery at the start: a learner knows a share of the concepts (drawn from the family's
    prior), the easier ones first with some disorder; a known concept is at 0.8-1 (at any role's level),
    the rest low."""
    mean, concentration = family.prior_known
    share = float(rng.beta(mean * concentration, (1 - mean) * concentration)) if mean > 0 else 0.0
    known = (rank + rng.normal(0.0, 0.1, size=len(rank)) < share) & (share > 0)
    low = rng.beta(1.0, 9.0, size=len(rank))
    return np.asarray(np.where(known, rng.uniform(0.8, 1.0, size=len(rank)), low), dtype=np.float64)
