"""Bayesian Knowledge Tracing (BKT) with time-based forgetting and partial credit.

Vocabulary follows pyBKT: `prior` (P(L0)), `learns` (P(T)), `guesses` (P(G)), `slips` (P(S)).

Evidence semantics, one rule per kind of result (domain.assessment.ResultKind):
- a module assessment is taken after the module's instruction: learn, then observe. Its score is
  evidence about the state after learning, so a failed module reads as not learned;
- a practice item with feedback: observe, then learn at the skill's practice rate (`item_learn`);
- a check (placement, skill or readiness check): observe only.

Like pyBKT's multiple guess/slip per item type, a skill has three pairs of emissions: one for a
module's assessment (a score mixing the learner's ability and the module's other skills), one for
item results on a skill no module here has taught the learner yet (`item_guess`, `item_slip`: a
placement test's population, who mostly know a skill well or not at all) and one for item results
on a skill a module has taught them (`studied_item_guess`, `studied_item_slip`: learners part of
the way, whom binary mastery fits less well). A fit on placement items alone reads a right answer
as near proof of mastery; applied to the checks after a study, that declares a learner just under
the level ready. Like pyBKT's multiple learn rates, a module's own learning effect on a skill is a
parameter of its own where training fitted it (BKTModel.module_learn), and the skill's `learn`
otherwise.
Unlike pyBKT, forgetting is not per attempt but over elapsed real time: between practices the
mastery decays exponentially toward a floor, at `forget_per_day` (1/day). Mastery decays,
it never rises, with time alone.

Every function takes floats or numpy arrays (vectorized over skills or events) and is pure.
Invariants (tested with hypothesis): mastery stays in [0, 1]; with guess + slip < 1, a fully
correct answer never lowers the mastery of the skills it touches at the same instant, and a
failed module assessment leaves the estimate below what the study alone would give.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from recommender.domain.assessment import AssessmentEvent, ResultKind, resolve_kind
from recommender.domain.profile import SkillState, skill_state

SECONDS_PER_DAY = 86_400.0
FloatArray = npt.NDArray[np.float64]
ArrayOrFloat = FloatArray | float


@dataclass(frozen=True)
class SkillParams:
    """BKT parameters of one skill. Probabilities, except forget_per_day (rate, 1/day)."""

    prior: float = 0.15
    # a module is hours of instruction, not one tutor step: by default most learners who study a
    # module are taken to learn its skills, and its assessment, read after the learning, corrects
    # that for those who did not; training fits it per skill and per module
    # (docs/decisions/0002-learning-rates.md)
    learn: float = 0.8
    guess: float = 0.2
    slip: float = 0.1
    forget_per_day: float = 0.003  # a half-life of about 230 days
    floor: float = 0.05
    # the emissions of item results: a check's items are pitched at a role's level, so a learner a
    # little under it still answers many right; a fit on item results replaces both
    item_guess: float = 0.3
    item_slip: float = 0.1
    # the emissions of item results on a skill a module here has taught the learner (a check after
    # a study); fitted only from such results, never borrowed from the placement items'
    studied_item_guess: float = 0.3
    studied_item_slip: float = 0.1
    # the practice rate: P(learn) after a practice item. None assumed until the history shows it
    # (training fits it from practice results); checks never learn
    item_learn: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "prior",
            "learn",
            "guess",
            "slip",
            "floor",
            "item_guess",
            "item_slip",
            "item_learn",
            "studied_item_guess",
            "studied_item_slip",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if (
            self.guess + self.slip >= 1.0
            or self.item_guess + self.item_slip >= 1.0
            or self.studied_item_guess + self.studied_item_slip >= 1.0
        ):
            raise ValueError("guess + slip must be < 1, or a correct answer could lower mastery")
        if self.forget_per_day < 0:
            raise ValueError("forget_per_day must be >= 0")


DEFAULT_PARAMS = SkillParams()

# the evidence in one module-assessment score, in items: a module's test has several items, so
# its score says more than one item does, though less than as many independent items (they share
# the learner's general ability and the module's other skills) (docs/decisions/0001-evidence-semantics.md)
MODULE_SCORE_WEIGHT = 2.0


@dataclass(frozen=True)
class BKTModel:
    """Per-skill parameters with a default for skills the fit never saw, and each module's own
    learning effect on each of its skills where the history shows it (pyBKT's multiple learn
    rates, one per module)."""

    params: Mapping[str, SkillParams] = field(default_factory=dict)
    default: SkillParams = DEFAULT_PARAMS
    module_learn: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (module, skill) -> P(learn)

    def of(self, skill_id: str) -> SkillParams:
        return self.params.get(skill_id, self.default)

    def learn_from(self, module_id: str, skill_id: str) -> float:
        """P(learning skill_id) from studying module_id: fitted for the pair, else the skill's rate."""
        found = self.module_learn.get((module_id, skill_id))
        return self.of(skill_id).learn if found is None else found


def decay(mastery: float, elapsed_days: float, forget_per_day: float, floor: float) -> float:
    """Mastery after `elapsed_days` without practice: exponential decay of the excess over floor.
    Scalar (math, not numpy): one result updates a few skills, where numpy's per-call overhead on
    scalars outweighs the arithmetic; kt/fit.py has the vectorized form for training."""
    if mastery <= floor:
        return min(max(mastery, 0.0), 1.0)
    keep = math.exp(-forget_per_day * max(elapsed_days, 0.0))
    return min(max(floor + (mastery - floor) * keep, 0.0), 1.0)


def likelihoods(score: float, guess: float, slip: float, weight: float = 1.0) -> tuple[float, float]:
    """(P(score | unmastered), P(score | mastered)) of a score read as `weight` items' worth of
    evidence: a partial score is a fractional count of right answers (right^score wrong^(1-score)),
    so 0 and 1 give BKT's own emissions and a score halfway gives evidence halfway between."""
    unknown = (guess**score * (1.0 - guess) ** (1.0 - score)) ** weight
    known = ((1.0 - slip) ** score * slip ** (1.0 - score)) ** weight
    return unknown, known


def posterior(mastery: float, score: float, guess: float, slip: float, weight: float = 1.0) -> float:
    """P(mastered | observed score), by Bayes' rule on likelihoods()."""
    unknown, known = likelihoods(score, guess, slip, weight)
    evidence = mastery * known + (1.0 - mastery) * unknown
    if evidence <= 0:
        return min(max(mastery, 0.0), 1.0)
    return min(max(mastery * known / evidence, 0.0), 1.0)


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
    kind: ResultKind = ResultKind.MODULE_ASSESSMENT,
    learn: float | None = None,
    weight: float = 1.0,
) -> SkillState:
    """One skill's state after one result: forget since last practice, then the kind's order of
    learning and evidence (ResultKind): a module assessment learns (at `learn`, the module's own
    effect on the skill, else the skill's rate) and then observes, because its test comes after the
    instruction; a practice item observes and then learns at the skill's practice rate
    (`item_learn`); a check only observes. An item result (practice or check) resets the count of
    studies since the skill was last checked, and is read with the studied pair of emissions once
    a module assessment has taught the skill.

    `weight`: the skill's weight in the module (catalog), for a module assessment. A module that
    is partly about the skill teaches it in proportion (its rate, the pair's own or the skill's,
    times the weight, as the planner projects it), and its score is evidence about the skill in
    proportion (MODULE_SCORE_WEIGHT items times the weight): a score mostly earned on the
    module's main skill says little about a side skill."""
    if state is None:
        prior, last, attempts, studies, studied = params.prior, at, 0, 0, False
    else:
        prior = mastery_now(state, params, at)
        last, attempts, studies = max(state.last_practiced_at, at), state.attempts, state.studies_since_check
        studied = state.studied
    kind = resolve_kind(kind, "")
    if kind is ResultKind.MODULE_ASSESSMENT:
        rate = (params.learn if learn is None else learn) * weight
        mastery = posterior(
            prior + (1.0 - prior) * rate, score, params.guess, params.slip, MODULE_SCORE_WEIGHT * weight
        )
        studies += 1
        studied = True
    else:
        if studied:
            mastery = posterior(prior, score, params.studied_item_guess, params.studied_item_slip)
        else:
            mastery = posterior(prior, score, params.item_guess, params.item_slip)
        if kind is ResultKind.PRACTICE:
            mastery += (1.0 - mastery) * params.item_learn
        studies = 0
    return skill_state(skill_id, min(max(mastery, 0.0), 1.0), attempts + 1, last, studies, studied)


def profile_updater(
    model: BKTModel,
    skill_weights: Callable[[str], Mapping[str, float]] | None = None,
) -> Callable[[Mapping[str, SkillState], AssessmentEvent], list[SkillState]]:
    """The store's Updater for this model: each touched skill gets one BKT step. `skill_weights`:
    a module's skill weights in the catalog (apply_result's `weight`); a skill the module does not
    list, or no catalog, counts in full.

    The step is apply_result's, its arithmetic written out in one function (the same operations
    in the same order, so the same floats): a batch applies it once per result and skill, where
    apply_result's calls and keyword arguments cost more than its arithmetic. What a step needs of
    the model and catalog is looked up once per (module, kind, skills)."""
    plans: dict[tuple[str, ResultKind, tuple[str, ...]], tuple[tuple[str, SkillParams, float, float], ...]] = {}

    def plan(
        module_id: str, kind: ResultKind, skill_ids: tuple[str, ...]
    ) -> tuple[tuple[str, SkillParams, float, float], ...]:
        """(skill, params, learning rate times weight, evidence weight) per skill: apply_result's
        `rate` and posterior weight for a module assessment."""
        module = module_id if kind is ResultKind.MODULE_ASSESSMENT else ""
        weights = skill_weights(module) if module and skill_weights is not None else {}
        steps = []
        for s in skill_ids:
            params = model.of(s)
            learn = model.module_learn.get((module, s)) if module else None
            weight = weights.get(s, 1.0)
            steps.append((s, params, (params.learn if learn is None else learn) * weight, MODULE_SCORE_WEIGHT * weight))
        found = plans[(module_id, kind, skill_ids)] = tuple(steps)
        return found

    exp = math.exp

    def update(states: Mapping[str, SkillState], event: AssessmentEvent) -> list[SkillState]:
        kind = event.kind
        if kind is ResultKind.UNSPECIFIED:
            kind = ResultKind.PRACTICE if event.item_id else ResultKind.MODULE_ASSESSMENT
        skill_ids = event.skill_ids
        steps = plans.get((event.module_id, kind, skill_ids)) or plan(event.module_id, kind, skill_ids)
        score, at = event.score, event.occurred_at
        out = []
        for skill_id, params, rate, evidence in steps:
            state = states.get(skill_id)
            if state is None:
                prior, last, attempts, studies, studied = params.prior, at, 0, 0, False
            else:
                studied = state.studied
                mastery, floor, practiced = state.mastery, params.floor, state.last_practiced_at
                if mastery <= floor:  # decay(): nothing above the floor to forget
                    prior = min(max(mastery, 0.0), 1.0)
                else:
                    days = max((at - practiced).total_seconds(), 0.0) / SECONDS_PER_DAY  # elapsed_days()
                    keep = exp(-params.forget_per_day * max(days, 0.0))
                    prior = min(max(floor + (mastery - floor) * keep, 0.0), 1.0)
                last, attempts, studies = max(practiced, at), state.attempts, state.studies_since_check
            if kind is ResultKind.MODULE_ASSESSMENT:
                learned = prior + (1.0 - prior) * rate
                guess, slip, weight = params.guess, params.slip, evidence
            elif studied:
                learned = prior
                guess, slip, weight = params.studied_item_guess, params.studied_item_slip, 1.0
            else:
                learned = prior
                guess, slip, weight = params.item_guess, params.item_slip, 1.0
            # posterior() of likelihoods()
            unknown = (guess**score * (1.0 - guess) ** (1.0 - score)) ** weight
            known = ((1.0 - slip) ** score * slip ** (1.0 - score)) ** weight
            total = learned * known + (1.0 - learned) * unknown
            mastery = min(max(learned if total <= 0 else learned * known / total, 0.0), 1.0)
            if kind is ResultKind.MODULE_ASSESSMENT:
                studies += 1
                studied = True
            else:
                if kind is ResultKind.PRACTICE:
                    mastery += (1.0 - mastery) * params.item_learn
                studies = 0
            out.append(skill_state(skill_id, min(max(mastery, 0.0), 1.0), attempts + 1, last, studies, studied))
        return out

    return update


def replay(model: BKTModel, events: Iterable[AssessmentEvent]) -> dict[str, SkillState]:
    """States after applying events in order: what the store must hold after the same events."""
    states: dict[str, SkillState] = {}
    update = profile_updater(model)
    for event in events:
        for state in update(states, event):
            states[state.skill_id] = state
    return states
