"""Bayesian Knowledge Tracing (BKT) with time-based forgetting and partial credit.

Vocabulary follows pyBKT: `prior` (P(L0)), `learns` (P(T)), `guesses` (P(G)), `slips` (P(S)).
Like pyBKT's multiple guess/slip per item type, a skill has two pairs of emissions: one for a
module's own assessment (a score mixing the learner's ability and the module's other skills) and
one for item results (a check's short items on the skill itself), so fitting the one on module
scores cannot make a check's answers meaningless; and, like pyBKT's multiple learn rates, a
learning rate after each kind (`learn` after a module study, `item_learn`, 0 unless fitted, after
an item).
Unlike pyBKT, forgetting is not per attempt but over elapsed real time: between practices the
mastery decays exponentially toward a floor, at `forget_per_day` (1/day). Mastery decays,
it never rises, with time alone.

Every function takes floats or numpy arrays (vectorized over skills or events) and is pure.
Invariants (tested with hypothesis): mastery stays in [0, 1]; with guess + slip < 1, a fully
correct answer never lowers the mastery of the skills it touches at the same instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.profile import SkillState

SECONDS_PER_DAY = 86_400.0
FloatArray = npt.NDArray[np.float64]
ArrayOrFloat = FloatArray | float


@dataclass(frozen=True)
class SkillParams:
    """BKT parameters of one skill. Probabilities, except forget_per_day (rate, 1/day)."""

    prior: float = 0.15
    # a module study is hours of instruction, not one tutor step: by default most learners who
    # study a module are taken to learn its skills. With a tutor step's 0.12 (and forgetting at
    # 0.01/day) the estimate lagged so far behind that the simulator's adaptive learners needed
    # more modules than the fixed syllabus (chosen there among 0.12-0.8 and 0.002-0.01/day on one
    # cohort, checked on two others; a trained model replaces both where the data allow)
    learn: float = 0.6
    guess: float = 0.2
    slip: float = 0.1
    forget_per_day: float = 0.003  # a half-life of about 230 days
    floor: float = 0.05
    # the emissions of item results. A check's items are pitched at a role's level, so a learner a
    # little under it still answers many right: with 0.2, 6 right of 10 by a learner truly a hair
    # under a level counted as evidence of mastery (0.3 on five held-out simulator cohorts: fewer
    # modules on each; docs/simulator-experiments.md); a fit on item results replaces both
    item_guess: float = 0.3
    item_slip: float = 0.1
    # P(learn) after an item result: none by default (a check's question is evidence, not
    # instruction); training fits it where a skill's item results show learning (tutored practice)
    item_learn: float = 0.0

    def __post_init__(self) -> None:
        for name in ("prior", "learn", "guess", "slip", "floor", "item_guess", "item_slip", "item_learn"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.guess + self.slip >= 1.0 or self.item_guess + self.item_slip >= 1.0:
            raise ValueError("guess + slip must be < 1, or a correct answer could lower mastery")
        if self.forget_per_day < 0:
            raise ValueError("forget_per_day must be >= 0")


DEFAULT_PARAMS = SkillParams()


@dataclass(frozen=True)
class BKTModel:
    """Per-skill parameters with a default for skills the fit never saw."""

    params: Mapping[str, SkillParams] = field(default_factory=dict)
    default: SkillParams = DEFAULT_PARAMS

    def of(self, skill_id: str) -> SkillParams:
        return self.params.get(skill_id, self.default)


def decay(mastery: float, elapsed_days: float, forget_per_day: float, floor: float) -> float:
    """Mastery after `elapsed_days` without practice: exponential decay of the excess over floor.
    Scalar (math, not numpy): one result updates a few skills, and numpy's per-call overhead on
    scalars was a third of ingest time; kt/fit.py has the vectorized form for training."""
    if mastery <= floor:
        return min(max(mastery, 0.0), 1.0)
    keep = math.exp(-forget_per_day * max(elapsed_days, 0.0))
    return min(max(floor + (mastery - floor) * keep, 0.0), 1.0)


def posterior(mastery: float, score: float, guess: float, slip: float) -> float:
    """P(mastered | observed score); a partial score mixes the correct and incorrect posteriors."""
    m = mastery
    p_correct = m * (1.0 - slip) + (1.0 - m) * guess
    p_wrong = m * slip + (1.0 - m) * (1.0 - guess)
    post_correct = m * (1.0 - slip) / p_correct if p_correct > 0 else m
    post_wrong = m * slip / p_wrong if p_wrong > 0 else m
    return min(max(score * post_correct + (1.0 - score) * post_wrong, 0.0), 1.0)


def elapsed_days(since: datetime, until: datetime) -> float:
    """Days between two moments; never negative (out-of-order events do not un-forget)."""
    return max((until - since).total_seconds(), 0.0) / SECONDS_PER_DAY


def mastery_now(state: SkillState, params: SkillParams, now: datetime) -> float:
    return decay(state.mastery, elapsed_days(state.last_practiced_at, now), params.forget_per_day, params.floor)


def apply_result(
    state: SkillState | None,
    skill_id: str,
    score: float,
    at: datetime,
    params: SkillParams,
    *,
    item: bool = False,
) -> SkillState:
    """One skill's state after one result: forget since last practice, observe, learn. After an
    item result (`item`) the learning step is the skill's `item_learn`, by default none: a check's
    question is evidence only (ten items each followed by a module's learning step carried learners
    truly just under a level to estimates of 0.99). An item result resets the count of studies
    since the skill was last checked."""
    if state is None:
        prior, last, attempts, studies = params.prior, at, 0, 0
    else:
        prior = mastery_now(state, params, at)
        last, attempts, studies = max(state.last_practiced_at, at), state.attempts, state.studies_since_check
    if item:
        observed = posterior(prior, score, params.item_guess, params.item_slip)
    else:
        observed = posterior(prior, score, params.guess, params.slip)
    learned = observed + (1.0 - observed) * (params.item_learn if item else params.learn)
    return SkillState(
        skill_id=skill_id,
        mastery=min(max(learned, 0.0), 1.0),
        attempts=attempts + 1,
        last_practiced_at=last,
        studies_since_check=0 if item else studies + 1,
    )


def profile_updater(
    model: BKTModel,
) -> Callable[[Mapping[str, SkillState], AssessmentEvent], list[SkillState]]:
    """The store's Updater for this model: each touched skill gets one BKT step."""

    def update(states: Mapping[str, SkillState], event: AssessmentEvent) -> list[SkillState]:
        item = not event.studies_module
        return [
            apply_result(states.get(s), s, event.score, event.occurred_at, model.of(s), item=item)
            for s in event.skill_ids
        ]

    return update


def replay(model: BKTModel, events: Iterable[AssessmentEvent]) -> dict[str, SkillState]:
    """States after applying events in order: what the store must hold after the same events."""
    states: dict[str, SkillState] = {}
    update = profile_updater(model)
    for event in events:
        for state in update(states, event):
            states[state.skill_id] = state
    return states
