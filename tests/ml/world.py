"""A small seeded world with a known answer: learners from country AA pass track-x modules and
fail track-y modules; learners from BB the opposite. Nothing else explains success."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.catalog import Catalog, Module, Skill, SkillRequirement, SkillWeight, TargetRole, build_catalog
from recommender.domain.learner import Learner
from recommender.ml.data import TrainingData, build_event_table
from tests.conftest import T0


def world_catalog() -> Catalog:
    skills = [Skill("x"), Skill("y")]
    modules = [
        Module(f"{t}-{i}", skills=(SkillWeight(t),), languages=("en",), track=t, difficulty=0.5)
        for t in ("x", "y")
        for i in range(5)
    ]
    roles = [TargetRole("r", requirements=(SkillRequirement("x", 0.8), SkillRequirement("y", 0.8)))]
    return build_catalog(skills, modules, roles)


def world(n_learners: int = 300, seed: int = 0) -> tuple[TrainingData, list[AssessmentEvent]]:
    rng = np.random.default_rng(seed)
    catalog = world_catalog()
    learners: dict[str, Learner] = {}
    events: list[AssessmentEvent] = []
    for i in range(n_learners):
        country = "AA" if i % 2 == 0 else "BB"
        learner = Learner(f"l{i:04d}", country=country, languages=("en",))
        learners[learner.learner_id] = learner
        good = "x" if country == "AA" else "y"
        for k, module_id in enumerate(rng.choice(catalog.module_ids, size=6, replace=False)):
            p = 0.9 if module_id.startswith(good) else 0.1
            events.append(
                AssessmentEvent(
                    event_id=f"{learner.learner_id}-{k}",
                    learner_id=learner.learner_id,
                    module_id=str(module_id),
                    score=float(rng.random() < p),
                    occurred_at=T0 - timedelta(days=10 - k),
                )
            )
    return TrainingData(catalog, build_event_table(events, catalog), learners), events
