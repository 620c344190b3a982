"""The lab's policies, run by the product simulator's loop beside adaptive, oracle and syllabus:

- bayes: the same planner fed the posterior mean of a particle filter (lab/posterior.py) that
  knows the simulator's equations, the population and the world's module effects but not the
  learner, updated from exactly what the service sees (module scores, check items, declared HSK
  and experience), with BAYES_MARGIN on role levels, and the same readiness check: close to the
  best knowledge tracing these observations allow, so adaptive -> bayes is what a better tracer
  could still win and bayes -> oracle what no tracer can;
- a noisy oracle: the oracle fed the truth plus Gaussian noise of sd `noise`, drawn afresh at
  every step, planning with `margin` on role levels: what knowledge tracing that accurate would
  give;
- popularity: the modules most taken in histories drawn like the demo world's first, whatever the
  prerequisites.

A margin on role levels is a requirement met at level + margin * (1 - level). The planner knows
no margin: the lab raises the role levels in a copy of the catalog and plans over its arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lab.posterior import ParticleTracker
from recommender.domain.catalog import Catalog, build_catalog
from recommender.domain.path import PathStep
from recommender.planner.arrays import CatalogArrays
from recommender.service.simulate import (
    PRODUCT_POLICIES,
    CheckAnswers,
    LearnerRun,
    Oracle,
    Policy,
    Session,
    plan_on_levels,
    study_step,
)
from recommender.simulation.truth import FloatArray, can_take, role_syllabus, sample_learners

# the bayes policy's margin on role levels: the best of 0, 0.1, 0.2, 0.25, 0.3 and 0.4 on the demo
# world (docs/simulator-experiments.md)
BAYES_MARGIN = 0.25
LAB_POLICIES = ("adaptive", "bayes", "oracle", "syllabus", "popularity")


def raised_levels(catalog: Catalog, margin: float) -> Catalog:
    """The catalog with every role requirement's level raised to level + margin * (1 - level)."""
    if not 0 <= margin < 1:
        raise ValueError("a margin on role levels must be in [0, 1)")
    roles = [
        replace(
            role, requirements=tuple(replace(r, level=r.level + margin * (1.0 - r.level)) for r in role.requirements)
        )
        for role in catalog.roles.values()
    ]
    return build_catalog(catalog.skills.values(), catalog.modules.values(), roles, catalog.revision)


def _arrays_with_margin(run: LearnerRun, margin: float) -> CatalogArrays | None:
    """The planner's arrays over the catalog with raised role levels (None: the service's own),
    built once per service catalog and kept with its arrays."""
    if not margin:
        return None
    arrays = run.app.paths.planner().arrays
    key = ("lab-raised-levels", margin)
    found = arrays.derived.get(key)
    if isinstance(found, CatalogArrays):
        return found
    raised = CatalogArrays.build(raised_levels(arrays.catalog, margin))
    arrays.derived[key] = raised
    return raised


@dataclass(frozen=True)
class Bayes:
    """The planner fed the particle filter's posterior mean."""

    margin: float = BAYES_MARGIN
    name: str = "bayes"
    reads_results: bool = True
    label: str = "bayes, the planner fed the best tracing of the same observations:"

    def start(self, run: LearnerRun) -> Session:
        return _BayesSession(run, self.margin)


class _BayesSession(Session):
    def __init__(self, run: LearnerRun, margin: float) -> None:
        self.run, self.margin = run, margin
        self.tracker = ParticleTracker.start(run.world, run.who.learner, run.draws)

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        feed = self.tracker.estimate()
        return plan_on_levels(self.run, feed, _arrays_with_margin(self.run, self.margin)), feed

    def checked(self, answers: CheckAnswers) -> None:
        for skill, level, rights in answers:
            self.tracker.checked(skill, level, rights)

    def studied(self, module_id: str, score: float) -> None:
        self.tracker.forget(1.0)
        self.tracker.studied(module_id, score)


@dataclass(frozen=True)
class NoisyOracle:
    """The oracle fed true mastery plus noise of sd `noise`, planning with `margin` on role levels."""

    noise: float = 0.0
    margin: float = 0.0
    name: str = "oracle"
    reads_results: bool = False
    label: str = field(init=False)

    def __post_init__(self) -> None:
        if self.noise < 0 or not 0 <= self.margin < 1:
            raise ValueError("oracle_noise must be >= 0 and oracle_margin in [0, 1)")
        label = Oracle().label
        if self.noise or self.margin:
            label = f"oracle, the planner fed true mastery + noise sd {self.noise:g}, margin {self.margin:g}:"
        object.__setattr__(self, "label", label)

    def start(self, run: LearnerRun) -> Session:
        return _NoisyOracleSession(run, self)


class _NoisyOracleSession(Session):
    def __init__(self, run: LearnerRun, oracle: NoisyOracle) -> None:
        self.run, self.oracle = run, oracle

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        feed = np.asarray(self.run.mastery, dtype=np.float64).copy()
        if self.oracle.noise:
            feed = np.clip(feed + self.run.draws.normal(0.0, self.oracle.noise, size=len(feed)), 0.0, 1.0)
        return plan_on_levels(self.run, feed, _arrays_with_margin(self.run, self.oracle.margin)), feed


@dataclass(frozen=True)
class Popularity:
    """The modules in `order` (most taken first) the learner can take, whatever the prerequisites;
    followed again from the start once finished."""

    order: tuple[str, ...]
    name: str = "popularity"
    reads_results: bool = False
    label: str = ""  # a baseline the table shows, not one it compares with the syllabus

    def start(self, run: LearnerRun) -> Session:
        catalog, learner = run.world.catalog, run.who.learner
        return _PopularitySession(run, [m for m in self.order if can_take(catalog.modules[m], learner)])


class _PopularitySession(Session):
    def __init__(self, run: LearnerRun, ranked: list[str]) -> None:
        self.run, self.ranked = run, ranked

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        ranked = self.ranked
        return (study_step(ranked[len(self.run.taken) % len(ranked)]) if ranked else None), None


def lab_policies(
    names: Sequence[str], *, popularity: Sequence[str] = (), oracle_noise: float = 0.0, oracle_margin: float = 0.0
) -> list[Policy]:
    """The named policies, in LAB_POLICIES order: the product's, bayes, the oracle with the given
    noise and margin, popularity over `popularity` (most taken first)."""
    unknown = sorted(set(names) - set(LAB_POLICIES))
    if unknown:
        raise ValueError(f"unknown policies {', '.join(unknown)} (known: {', '.join(LAB_POLICIES)})")
    made: dict[str, Policy] = {
        "bayes": Bayes(),
        "oracle": NoisyOracle(oracle_noise, oracle_margin),
        "popularity": Popularity(tuple(popularity)),
    }
    return [made.get(name) or PRODUCT_POLICIES[name] for name in LAB_POLICIES if name in names]


def popularity_order(counts: Counter[str], catalog: Catalog) -> list[str]:
    return sorted(catalog.module_ids, key=lambda m: (-counts.get(m, 0), m))


def historical_popularity(catalog: Catalog, seed: int, learners: int = 500) -> list[str]:
    """Module popularity in histories drawn like the demo world's (role syllabus prefixes)."""
    counts: Counter[str] = Counter()
    for i, who in enumerate(sample_learners(catalog, learners, np.random.default_rng([seed, 7]), prefix="h")):
        rng = np.random.default_rng([seed, 8, i])
        syllabus = role_syllabus(catalog, who.learner.target_role_id, who.learner)
        counts.update(syllabus[: int(rng.integers(2, max(3, min(len(syllabus), 30))))])
    return popularity_order(counts, catalog)
