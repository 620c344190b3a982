"""`python -m lab fit-truth`: what the BKT fit makes of a world family's past learners, beside
what the simulator knows.

The past learners are the ones `recommender simulate --history N` trains on (the same draws:
the family's first world, a placement test of 3 check items per role skill, then a prefix of
their syllabus, as `service.demo.record_histories` records them), replayed here with their true
mastery before and after every study. A skill's BKT state is read against the truth as "truly at
MASTERED or above", so the truth's two-state emissions are the mean score of each group: what a
fit could at best recover. The fit is `kt.fit.fit_bkt` on the same events, degenerate fits kept,
so what pins at a bound shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from recommender.domain.assessment import AssessmentEvent
from recommender.kt.fit import BOUNDS, MIN_RESPONSES, fit_bkt
from recommender.ml.data import build_event_table
from recommender.service.demo import placement_test
from recommender.service.simulate_families import family_key
from recommender.simulation.families import (
    WorldFamily,
    build_world,
    default_concept_graph_path,
    read_concept_graph,
    sample_family_learners,
)
from recommender.simulation.truth import attempt, forget, world_syllabus

MASTERED = 0.8  # the truth's threshold for the BKT state (the planner's prerequisite level)
PLACEMENT_ITEMS = 3
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FitTruth:
    """One family's fit against its truth (shares and means over the main skill of each study)."""

    family: str
    fitted_skills: int  # skills with at least MIN_RESPONSES module scores
    pinned: int  # of them, module-score guess or slip at its bound
    after_study: float  # truth: share at MASTERED after a study
    learned: float  # truth: share at MASTERED after a study, of those below it before
    score_at: float  # truth: mean module score at MASTERED (1 - slip)
    score_below: float  # truth: mean module score below it (guess)
    check_at: float  # truth: P(right) on a placement item at MASTERED (1 - item slip)
    check_below: float  # truth: P(right) below it (item guess)
    fit_item_guess: float  # median over skills whose item pair was fitted
    fit_item_slip: float

    def row(self) -> str:
        return (
            f"{self.family:<13} {self.fitted_skills:>6} {self.pinned:>6} {self.after_study:>8.2f} "
            f"{self.learned:>8.2f} {self.score_at:>8.2f} {self.score_below:>8.2f} {self.check_at:>8.2f} "
            f"{self.check_below:>8.2f} {self.fit_item_guess:>8.3f} {self.fit_item_slip:>8.3f}"
        )


HEADER = (
    f"{'family':<13} {'skills':>6} {'pinned':>6} {'at after':>8} {'learned':>8} {'score at':>8} "
    f"{'below':>8} {'check at':>8} {'below':>8} {'fit ig':>8} {'fit is':>8}"
)


def fit_against_truth(family: WorldFamily, history: int, seed: int) -> FitTruth:
    graph = read_concept_graph(default_concept_graph_path())
    key = family_key(family)
    world = build_world(family, np.random.default_rng([seed, 99, key, 0]), graph)
    catalog = world.catalog
    past = sample_family_learners(family, world, history, np.random.default_rng([seed, 6, key, 0]), prefix="past")
    events: list[AssessmentEvent] = []
    studies: list[tuple[float, float, float]] = []  # main skill: (before, after, score)
    checks: list[tuple[float, float]] = []  # (true mastery, answer)
    for i, who in enumerate(past):
        lid = who.learner.learner_id
        rng = np.random.default_rng([seed, 2, i])
        syllabus = world_syllabus(world, who.learner.target_role_id, who.learner)
        kept = [m for m in syllabus if rng.random() > 0.1]
        taken = kept[: int(rng.integers(2, max(3, min(len(kept), 30))))]
        gaps = list(rng.exponential(3.0, size=len(taken)) + 0.5)
        placement = placement_test(world, who, PLACEMENT_ITEMS, _T0, np.random.default_rng([seed, 3, i]))
        events.extend(placement)
        checks.extend((float(who.initial_mastery[catalog.skill_index[e.skill_ids[0]]]), e.score) for e in placement)
        mastery, day = who.initial_mastery.copy(), 0.0
        for k, (module_id, gap) in enumerate(zip(taken, gaps, strict=True)):
            mastery = forget(mastery, gap, who.forget_per_day)
            day += gap
            main = catalog.skill_index[catalog.modules[module_id].skills[0].skill_id]
            before = float(mastery[main])
            score, mastery = attempt(world, who, mastery, module_id, rng)
            studies.append((before, float(mastery[main]), score))
            events.append(
                AssessmentEvent(
                    event_id=f"{lid}-e{k:03d}", learner_id=lid, module_id=module_id, score=score,
                    occurred_at=_T0 + timedelta(days=day),
                )
            )  # fmt: skip
    table = build_event_table(events, catalog)
    seqs = table.skill_sequences(catalog.module_skill_weights)
    n_skills = len(catalog.skill_ids)
    fit = fit_bkt(seqs, n_skills)
    module_rows = np.bincount(seqs.row_skill[~seqs.item], minlength=n_skills) >= MIN_RESPONSES
    # the placement pair is fitted from items before any study (after one: the studied pair)
    item_rows = np.bincount(seqs.row_skill[seqs.item & ~seqs.taught_item], minlength=n_skills) >= MIN_RESPONSES
    pinned = (fit.guess >= BOUNDS["guess"][1]) | (fit.slip >= BOUNDS["slip"][1])
    s = np.array(studies)
    c = np.array(checks)
    at, below = s[:, 1] >= MASTERED, s[:, 0] < MASTERED
    check_at = c[:, 0] >= MASTERED

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else float("nan")

    return FitTruth(
        family=family.name,
        fitted_skills=int(module_rows.sum()),
        pinned=int((pinned & module_rows).sum()),
        after_study=mean(at),
        learned=mean(at[below]),
        score_at=mean(s[at, 2]),
        score_below=mean(s[~at, 2]),
        check_at=mean(c[check_at, 1]),
        check_below=mean(c[~check_at, 1]),
        fit_item_guess=float(np.median(fit.item_guess[item_rows])) if item_rows.any() else float("nan"),
        fit_item_slip=float(np.median(fit.item_slip[item_rows])) if item_rows.any() else float("nan"),
    )
