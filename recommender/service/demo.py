"""The demo world: the shipped catalog plus a seeded cohort whose histories come from the
hidden-truth simulator, recorded through the same code path as live assessments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np

from recommender.domain.assessment import AssessmentEvent, ResultKind
from recommender.domain.catalog import Catalog
from recommender.service.app import App
from recommender.simulation.truth import (
    HiddenLearner,
    HiddenWorld,
    can_take,
    check_item_success,
    history,
    make_world,
    sample_learners,
    world_syllabus,
)
from recommender.storage.store import DEFAULT_TENANT

DEMO_SEED = 20261128
DEMO_LEARNERS = 2000
DEMO_COHORT = "demo-2026"
HISTORY_DAYS = 180


def demo_catalog_path() -> Path:
    return Path(str(resources.files("recommender") / "data" / "demo_catalog.json"))


@dataclass(frozen=True)
class DemoSummary:
    catalog_loaded: bool
    learners_added: int
    events_accepted: int


def load_demo(
    app: App,
    *,
    learners: int = DEMO_LEARNERS,
    seed: int = DEMO_SEED,
    tenant: str = DEFAULT_TENANT,
    progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Load what is missing of the demo world; a second run changes nothing. A learner is missing
    until their results are stored: a run stopped between a chunk's learners and its results
    (two transactions) is completed by the next."""
    catalog_loaded = False
    if app.catalogs.current().is_empty():
        app.catalogs.load_file(demo_catalog_path())
        catalog_loaded = True
    catalog = app.catalogs.require()
    world = make_world(catalog, np.random.default_rng([seed, 0]))
    cohort = demo_cohort(catalog, learners, seed)
    existing = app.store.get_learners(tenant, [h.learner.learner_id for h in cohort])
    with_results = app.store.get_skill_states_many(tenant, list(existing))
    missing = [(i, h) for i, h in enumerate(cohort) if not with_results.get(h.learner.learner_id)]
    accepted = record_histories(app, world, missing, seed, tenant=tenant, progress=progress)
    return DemoSummary(catalog_loaded, len(missing), accepted)


def demo_cohort(catalog: Catalog, learners: int = DEMO_LEARNERS, seed: int = DEMO_SEED) -> list[HiddenLearner]:
    """The demo world's learners, the same on every run."""
    return sample_learners(catalog, learners, np.random.default_rng([seed, 1]), prefix="demo", cohort_id=DEMO_COHORT)


def record_histories(
    app: App,
    world: HiddenWorld,
    learners: Sequence[tuple[int, HiddenLearner]],
    seed: int,
    *,
    tenant: str = DEFAULT_TENANT,
    progress: Callable[[int], None] | None = None,
    placement_items: int = 0,
) -> int:
    """Store the learners and their past results, ending the day before the app's clock: each
    (index, learner) works through a prefix of their role's syllabus (a module skipped now and
    then) in the hidden world, after a placement test of `placement_items` check items per role
    skill when that is the platform's protocol (simulate.Protocol). The index seeds the learner's
    draws. Returns the results accepted."""
    catalog = world.catalog
    end = app.clock() - timedelta(days=1)
    accepted = 0
    for start in range(0, len(learners), 250):
        chunk = learners[start : start + 250]
        events: list[AssessmentEvent] = []
        for i, who in chunk:
            rng = np.random.default_rng([seed, 2, i])
            syllabus = world_syllabus(world, who.learner.target_role_id, who.learner)
            skipped = [m for m in syllabus if rng.random() > 0.1]
            taken = skipped[: int(rng.integers(2, max(3, min(len(skipped), 30))))]
            gaps = list(rng.exponential(3.0, size=len(taken)) + 0.5)
            steps = history(world, who, taken, gaps, rng)
            start_day = end - timedelta(days=min(HISTORY_DAYS, sum(gaps) + rng.uniform(0, 30)))
            if placement_items:
                events += placement_test(world, who, placement_items, start_day, np.random.default_rng([seed, 3, i]))
            for k, (module_id, score, day) in enumerate(steps):
                events.append(
                    AssessmentEvent(
                        event_id=f"{who.learner.learner_id}-e{k:03d}",
                        learner_id=who.learner.learner_id,
                        module_id=module_id,  # the module's own assessment (no item): it was studied
                        score=score,
                        occurred_at=start_day + timedelta(days=day),
                        duration_seconds=float(catalog.modules[module_id].estimated_minutes * 60),
                    )
                )
        # learners first: an assessment for an unknown learner is rejected
        app.learners.upsert_many(tenant, [who.learner for _, who in chunk])
        accepted += app.learners.record_batch(tenant, events).accepted
        if progress:
            progress(len(chunk))
    return accepted


def placement_test(
    world: HiddenWorld, who: HiddenLearner, items: int, day: datetime, rng: np.random.Generator
) -> list[AssessmentEvent]:
    """A past learner's placement test: `items` check items per role skill at the start, filed
    under the first module teaching the skill that the learner can take (item results: evidence,
    not study), each right with the probability of the simulator's checks."""
    catalog = world.catalog
    events: list[AssessmentEvent] = []
    for r in catalog.roles[who.learner.target_role_id].requirements:
        module_id = next(
            (m for m in catalog.topological_order
             if r.skill_id in catalog.modules[m].skill_ids and can_take(catalog.modules[m], who.learner)),
            None,
        )  # fmt: skip
        if module_id is None:
            continue
        p = float(check_item_success(who.initial_mastery[catalog.skill_index[r.skill_id]], r.level))
        events.extend(
            AssessmentEvent(
                event_id=f"{who.learner.learner_id}-p-{r.skill_id}-{k}",
                learner_id=who.learner.learner_id,
                module_id=module_id,
                item_id=f"placement-{k}",
                skill_ids=(r.skill_id,),
                score=float(rng.random() < p),
                occurred_at=day - timedelta(hours=1),
                kind=ResultKind.CHECK,  # a placement item teaches nothing
            )
            for k in range(items)
        )
    return events
