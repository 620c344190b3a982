"""Close to the best knowledge tracing the simulator's observations allow: a particle filter over
one learner's hidden state that knows the simulator's equations (truth.py), the population the
learner was drawn from and the world's module effects (at best, a service could learn those from
history), but not the learner's own ability, learning rate, forgetting or starting mastery. It sees
exactly what the service sees: module scores, check items, the declared HSK level and experience.

Fed to the same planner as the oracle, it answers a question no tuning of the service can: how
close to the oracle can knowledge tracing get from these observations?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.domain.learner import Learner
from recommender.simulation.truth import (
    FloatArray,
    HiddenWorld,
    check_item_success,
    initial_mastery,
    learner_traits,
    study,
)

PARTICLES = 2000
# after a resample, each particle's traits are moved by this much (sd) so the cloud stays diverse
JITTER_ABILITY, JITTER_LEARN, JITTER_FORGET, JITTER_MASTERY = 0.05, 0.02, 0.0002, 0.01


@dataclass
class ParticleTracker:
    """Weighted samples of (ability, learn rate, forgetting, mastery per skill) for one learner."""

    world: HiddenWorld
    ability: FloatArray  # (particles,)
    learn_rate: FloatArray
    forget_per_day: FloatArray
    mastery: FloatArray  # (particles, skills)
    log_weight: FloatArray
    rng: np.random.Generator

    @classmethod
    def start(
        cls, world: HiddenWorld, learner: Learner, rng: np.random.Generator, particles: int = PARTICLES
    ) -> ParticleTracker:
        """The population prior given what the learner declared (HSK level, years of experience)."""
        role = world.catalog.roles[learner.target_role_id]
        experience = int(learner.attributes.get("experience_years", "0") or 0)
        mastery = initial_mastery(world.catalog, role, learner.chinese_level, experience, rng, particles)
        ability, learn_rate, forget = learner_traits(rng, particles)
        return cls(world, ability, learn_rate, forget, mastery, np.zeros(particles), rng)

    def estimate(self) -> FloatArray:
        """Posterior mean mastery per skill."""
        w = self.weights()
        return np.asarray(w @ self.mastery, dtype=np.float64)

    def ability_estimate(self) -> float:
        return float(self.weights() @ self.ability)

    def forget(self, days: float) -> None:
        self.mastery *= np.exp(-self.forget_per_day * max(days, 0.0))[:, None]

    def studied(self, module_id: str, score: float) -> None:
        """A module studied and assessed: weigh by the score's likelihood, then learn."""
        p, updated = study(self.world, module_id, self.mastery, self.ability, self.learn_rate)
        items = self.world.dynamics.score_items
        right = round(score * items)
        p = np.clip(p, 1e-12, 1 - 1e-12)
        self.log_weight += right * np.log(p) + (items - right) * np.log(1 - p)
        self.mastery = updated
        self._resample_if_degenerate()

    def checked(self, skill_index: int, level: float, answers: Sequence[bool]) -> None:
        """Check items on one skill against a role level (they teach nothing)."""
        p = np.clip(check_item_success(self.mastery[:, skill_index], level), 1e-12, 1 - 1e-12)
        right = int(sum(answers))
        self.log_weight += right * np.log(p) + (len(answers) - right) * np.log(1 - p)
        self._resample_if_degenerate()

    def weights(self) -> FloatArray:
        w = np.exp(self.log_weight - self.log_weight.max())
        return np.asarray(w / w.sum(), dtype=np.float64)

    def _resample_if_degenerate(self) -> None:
        """Systematic resampling when the effective sample size falls under half, then a small
        jitter (resample-move): the traits never change, so without it the cloud collapses."""
        w = self.weights()
        n = len(w)
        if 1.0 / float(np.sum(w**2)) >= n / 2:
            return
        positions = (self.rng.random() + np.arange(n)) / n
        pick = np.minimum(np.searchsorted(np.cumsum(w), positions), n - 1)
        jitter = self.rng.normal(size=(4, n))
        self.ability = self.ability[pick] + JITTER_ABILITY * jitter[0]
        self.learn_rate = np.clip(self.learn_rate[pick] + JITTER_LEARN * jitter[1], 0.6, 1.4)
        self.forget_per_day = np.clip(self.forget_per_day[pick] + JITTER_FORGET * jitter[2], 0.001, 0.006)
        noise = JITTER_MASTERY * self.rng.normal(size=self.mastery.shape)
        self.mastery = np.clip(self.mastery[pick] + noise, 0.0, 1.0)
        self.log_weight = np.zeros(n)
