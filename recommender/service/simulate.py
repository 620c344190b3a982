"""`recommender simulate`: hidden-truth learners take recommended modules one at a time; their
results are recorded through the same service code as live assessments. Policies compared on the
same learners and the same hidden truth:

- adaptive: RecommendPath after every result, take its first step. A skill-check step is taken as
  an item-level assessment of its skills (CHECK_ITEMS items per skill, each right with a probability
  that mirrors being truly at the role's level; it teaches nothing) and counted as one module and
  the step's minutes. When the planner believes the role is reached but the learner truly is not,
  the learner sits a readiness check (the same assessment of every role skill, counted as one module
  and CHECK_MINUTES): the platform's certification step. Both report item results through the same
  service code as live assessments;
- bayes: the same planner fed the posterior mean of a particle filter (simulation/posterior.py) that
  knows the simulator's equations, the population and the world's module effects but not the
  learner, updated from exactly what the service sees (module scores, check items, declared HSK
  and experience), with BAYES_MARGIN, and the same readiness check: close to the best knowledge
  tracing these observations allow, so adaptive -> bayes is about what a better tracer could still
  win and bayes -> oracle what no tracer can;
- oracle: the same planner fed the hidden true mastery instead of the service's estimate (a
  diagnostic: what perfect knowledge tracing would give; the rest of the gap is the planner's).
  With `oracle_noise` it is fed the truth plus Gaussian noise of that standard deviation, drawn
  afresh at every step, and plans with `oracle_margin` as its confidence margin: what knowledge
  tracing that accurate would give;
- syllabus: the role's modules in prerequisite order (fixed, the same for everyone), one module
  per concept where a concept has a Chinese-only variant; under a `Protocol` with more than one
  attempt, a module scored below the pass mark is retaken, up to that many attempts, then the
  syllabus moves on; at its end it starts again;
- popularity: the modules most taken in the demo histories first, whatever the prerequisites.

A `Protocol` says how learners meet the service: the demo world's (no placement test, each
syllabus module once) or the world families' (`FAMILY_PROTOCOL`: a placement test of
`placement_items` check items per role skill before the first step of a policy that reads results,
reported as item results, so evidence only, and counted as no module; a syllabus with retakes).

Reported per policy: modules and minutes until true role readiness (censored at --max-modules;
checks count as modules), the checks among them, the share of learners who reach it, how many
stopped short (the policy had nothing more to give, a readiness check included, while the learner
was truly not ready: believed ready, or nothing they can take teaches what is missing; they count
at the cap), normalized gain per step (true readiness gained / readiness missing before the step), prerequisite
violations (a module taken while one of its prerequisites was neither taken before nor truly
mastered) and, for a policy that plans on a mastery estimate, its tracking error (mean |estimate -
truth| over the role's skills, per decision) and bias.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommender.config import Settings
from recommender.domain.assessment import AssessmentEvent, ResultKind
from recommender.domain.catalog import Catalog
from recommender.domain.path import PathStep, StepKind
from recommender.errors import LubanError
from recommender.kt.bkt import BKTModel
from recommender.ml.train import TrainConfig
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import LearnerState, PlanOptions, plan_path
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.service.demo import record_histories
from recommender.service.paths import PathRequest, learner_state, model_key
from recommender.simulation.posterior import ParticleTracker
from recommender.simulation.truth import (
    HiddenLearner,
    HiddenWorld,
    attempt,
    can_take,
    check_item_success,
    forget,
    make_world,
    role_syllabus,
    sample_learners,
    true_chinese_level,
    true_readiness,
    world_syllabus,
)
from recommender.storage.store import DEFAULT_TENANT

POLICIES = ("adaptive", "bayes", "oracle", "syllabus", "popularity")
# run only when asked: the adaptive policy with Chinese only a filter at the declared HSK level
# (PlanOptions.chinese_route off), the language-blind baseline of `simulate --chinese-route`
NO_ROUTE = "no-route"
EXTRA_POLICIES = (NO_ROUTE,)
# the bayes policy's confidence margin: the best of 0, 0.1, 0.2, 0.25, 0.3 and 0.4 on the demo world
# (44.4 modules at 0.25; 57.7 at 0, where believed-ready learners stop short after one check)
BAYES_MARGIN = 0.25
CHECK_MINUTES = 60
CHECK_ITEMS = 10
MASTERED = 0.8  # a skill truly mastered: the family generator's floor of a known concept, the service's one confidence
READY = 1.0 - 1e-9
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Protocol:
    """How the simulated learners meet the service. `placement_items`: check items per role skill
    in a placement test before the first step (adaptive and bayes, the policies that read
    results; 0: none); `syllabus_attempts`: how often the syllabus policy takes a module scored
    below `pass_mark` before it moves on (1: once, whatever the score)."""

    placement_items: int = 0
    syllabus_attempts: int = 1
    pass_mark: float = 0.6

    def __post_init__(self) -> None:
        if self.placement_items < 0 or self.syllabus_attempts < 1 or not 0 <= self.pass_mark <= 1:
            raise ValueError("placement_items >= 0, syllabus_attempts >= 1 and pass_mark in [0, 1]")


DEMO_PROTOCOL = Protocol()
# the protocol of issue #20's evaluation: 3 placement items per required skill, a syllabus that
# retakes a module below the pass mark up to 3 attempts
FAMILY_PROTOCOL = Protocol(placement_items=3, syllabus_attempts=3, pass_mark=0.6)
READS_RESULTS = ("adaptive", "bayes", NO_ROUTE)


@dataclass
class PolicyResult:
    policy: str
    modules: list[int] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)  # skill and readiness checks among the modules
    minutes: list[float] = field(default_factory=list)
    reached: list[bool] = field(default_factory=list)
    gains: list[float] = field(default_factory=list)
    violations: int = 0
    stopped_short: int = 0  # learners the policy left with nothing to do while truly not ready
    curve: list[float] = field(default_factory=list)  # mean true readiness after step k
    model_version: str = ""  # the model active in this policy's service
    # per decision of a policy that plans on a mastery estimate: its mean error on the role's skills
    tracking_errors: list[float] = field(default_factory=list)  # |estimate - truth|
    tracking_biases: list[float] = field(default_factory=list)  # estimate - truth
    # per learner, the steps in order: a module id, "" for a check (never in the JSON: it is long)
    traces: list[list[str]] = field(default_factory=list)
    placement_items: list[int] = field(default_factory=list)  # per learner, item results before the first step

    def modules_mean(self) -> float:
        return float(np.mean(self.modules)) if self.modules else float("nan")

    def summary(self) -> dict[str, float | None]:
        modules = np.array(self.modules, dtype=float)
        return {
            "learners": len(self.modules),
            "reached_share": float(np.mean(self.reached)) if self.reached else 0.0,
            "modules_mean": self.modules_mean(),
            "modules_median": float(np.median(modules)) if len(modules) else float("nan"),
            "checks_mean": float(np.mean(self.checks)) if self.checks else float("nan"),
            "minutes_mean": float(np.mean(self.minutes)) if self.minutes else float("nan"),
            "gain_per_step": float(np.mean(self.gains)) if self.gains else float("nan"),
            "prerequisite_violations": self.violations,
            "stopped_short": self.stopped_short,
            # None (null): the policy plans on no mastery estimate
            "tracking_error": float(np.mean(self.tracking_errors)) if self.tracking_errors else None,
            "tracking_bias": float(np.mean(self.tracking_biases)) if self.tracking_biases else None,
        }


@dataclass(frozen=True)
class SimulationReport:
    world: str
    learners: int
    max_modules: int
    seed: int
    results: dict[str, PolicyResult]
    model_version: str = ""  # the services' active model; "" when they plan without one
    history_learners: int = 0  # past learners the model was trained on
    oracle_noise: float = 0.0  # sd of the noise on the oracle's true mastery
    oracle_margin: float = 0.0  # the oracle's confidence margin on role levels
    reset_degenerate_bkt: bool = True  # how the model was trained (TrainConfig)

    def to_json(self) -> dict[str, Any]:
        policies = {name: r.summary() for name, r in self.results.items()}

        def reduction(name: str) -> float:
            if name not in self.results or "syllabus" not in self.results:
                return float("nan")
            return 1 - self.results[name].modules_mean() / self.results["syllabus"].modules_mean()

        def interval(name: str) -> list[float]:
            if name not in self.results or "syllabus" not in self.results:
                return [float("nan"), float("nan")]
            return list(
                paired_reduction_interval(self.results[name].modules, self.results["syllabus"].modules, self.seed)
            )

        return {
            "world": self.world,
            "learners": self.learners,
            "max_modules": self.max_modules,
            "seed": self.seed,
            "model_version": self.model_version,
            "history_learners": self.history_learners,
            "oracle_noise": self.oracle_noise,
            "oracle_margin": self.oracle_margin,
            "reset_degenerate_bkt": self.reset_degenerate_bkt,
            "policies": policies,
            "adaptive_vs_syllabus_module_reduction": reduction("adaptive"),
            "adaptive_vs_syllabus_module_reduction_ci95": interval("adaptive"),
            "oracle_vs_syllabus_module_reduction": reduction("oracle"),
            "oracle_vs_syllabus_module_reduction_ci95": interval("oracle"),
            "curves": {name: r.curve for name, r in self.results.items()},
        } | (
            {"bayes_vs_syllabus_module_reduction": reduction("bayes"),
             "bayes_vs_syllabus_module_reduction_ci95": interval("bayes")}
            if "bayes" in self.results else {}
        )  # fmt: skip

    def table(self) -> str:
        doc = self.to_json()
        head = (
            f"{'policy':<12}{'reached':>9}{'stopped':>9}{'modules':>9}{'median':>8}{'checks':>8}{'minutes':>10}"
            f"{'gain/step':>11}{'prereq viol.':>14}{'track err':>11}"
        )
        lines = [
            f"world {self.world}: {self.learners} learners, cap {self.max_modules} modules, seed {self.seed}",
            head,
        ]
        for name, s in doc["policies"].items():
            lines.append(
                f"{name:<12}{s['reached_share']:>9.1%}{s['stopped_short']:>9d}{s['modules_mean']:>9.1f}"
                f"{s['modules_median']:>8.1f}"
                f"{s['checks_mean']:>8.1f}{s['minutes_mean']:>10.0f}{s['gain_per_step']:>11.3f}{s['prerequisite_violations']:>14d}"
                + (f"{s['tracking_error']:>11.3f}" if s["tracking_error"] is not None else f"{'-':>11}")
            )
        fed = "true mastery"
        if self.oracle_noise or self.oracle_margin:
            fed += f" + noise sd {self.oracle_noise:g}, margin {self.oracle_margin:g}"

        def versus(name: str) -> str:
            low, high = doc[f"{name}_vs_syllabus_module_reduction_ci95"]
            return f"{doc[f'{name}_vs_syllabus_module_reduction']:.1%} (95% CI {low:.1%} to {high:.1%})"

        labels = {
            "adaptive": "adaptive",
            "bayes": "bayes, the planner fed the best tracing of the same observations:",
            "oracle": f"oracle, the planner fed {fed}:",
        }
        compared = [name for name in labels if name in self.results] if "syllabus" in self.results else []
        for k, name in enumerate(compared):
            lines.append(("fewer modules than the syllabus: " if k == 0 else "  ") + f"{labels[name]} {versus(name)}")
        if self.model_version:
            lines.append(
                f"the services' active model: {self.model_version}, trained on {self.history_learners} past learners"
                " in this world, degenerate BKT fits "
                + ("reset to the defaults" if self.reset_degenerate_bkt else "kept")
            )
        return "\n".join(lines)


def paired_reduction_interval(
    modules: Sequence[int], baseline: Sequence[int], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of 1 - mean(modules) / mean(baseline), resampling
    learners (both policies ran on the same learners, so a resample keeps each learner's pair):
    with tens of learners the point estimate moves by several points from cohort to cohort."""
    ours, theirs = np.asarray(modules, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if not len(ours) or len(ours) != len(theirs):
        return float("nan"), float("nan")
    picks = np.random.default_rng([seed, 31]).integers(len(ours), size=(resamples, len(ours)))
    with np.errstate(divide="ignore", invalid="ignore"):
        reductions = 1.0 - ours[picks].mean(axis=1) / theirs[picks].mean(axis=1)
    reductions = reductions[np.isfinite(reductions)]  # a resample whose baseline needed no module has no ratio
    if not len(reductions):
        return float("nan"), float("nan")
    low, high = np.percentile(reductions, [2.5, 97.5])
    return float(low), float(high)


def paired_ratio_interval(
    modules: Sequence[int], baseline: Sequence[int], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """The same paired bootstrap as `paired_reduction_interval`, as an interval of the ratio
    mean(modules) / mean(baseline)."""
    low, high = paired_reduction_interval(modules, baseline, seed, resamples)
    return 1.0 - high, 1.0 - low


def simulate(
    catalog: Catalog,
    cohort: Sequence[HiddenLearner],
    *,
    world_name: str,
    seed: int,
    max_modules: int = 60,
    popularity: Sequence[str] = (),
    policies: Sequence[str] = POLICIES,
    workdir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    history: Sequence[HiddenLearner] = (),
    oracle_noise: float = 0.0,
    oracle_margin: float = 0.0,
    reset_degenerate_bkt: bool = True,
    world: HiddenWorld | None = None,
    protocol: Protocol = DEMO_PROTOCOL,
) -> SimulationReport:
    """Every policy on the same learners and hidden world (`world`, whose catalog must be
    `catalog`; by default the demo dynamics over `catalog` with module effects drawn from the
    seed), under `protocol`. With `history`, those learners' past results in the world train a
    model first (`reset_degenerate_bkt` as in TrainConfig), and every policy's service runs with it
    active."""
    oracle = OracleFeed(oracle_noise, oracle_margin)
    if world is None:
        world = make_world(catalog, np.random.default_rng([seed, 99]))
    elif world.catalog is not catalog:
        raise ValueError("the world must be built on the catalog simulated")
    results: dict[str, PolicyResult] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        models_dir = Path(tmp) / "m"
        config = TrainConfig(reset_degenerate_bkt=reset_degenerate_bkt)
        version = (
            _train_on_histories(world, history, seed, Path(tmp), models_dir, config, protocol.placement_items)
            if history
            else ""
        )
        for policy in policies:
            clock = ManualClock(_START)
            app = _service(catalog, Path(tmp) / f"{policy}.db", models_dir, clock)
            try:
                if version:
                    app.models.activate(version)
                app.learners.upsert_many(DEFAULT_TENANT, [h.learner for h in cohort])
                active = app.models.active()
                result = PolicyResult(policy, model_version=active.version if active else "")
                for i, who in enumerate(cohort):
                    rng = np.random.default_rng([seed, i])  # same draws for every policy
                    noise = np.random.default_rng([seed, i, 17])  # the oracle's own draws
                    placement = np.random.default_rng([seed, i, 29])  # the placement test's own draws
                    _run_learner(
                        app, clock, world, who, policy, popularity, max_modules, rng, result, oracle, noise,
                        protocol, placement,
                    )  # fmt: skip
                    if progress:
                        progress(1)
                results[policy] = result
            finally:
                app.close()
    return SimulationReport(
        world_name, len(cohort), max_modules, seed, results, version, len(history), oracle_noise, oracle_margin,
        reset_degenerate_bkt and bool(history),
    )  # fmt: skip


@dataclass(frozen=True)
class OracleFeed:
    """What the oracle policy is fed: true mastery plus noise of sd `noise`, planned with `margin`."""

    noise: float = 0.0
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.noise < 0 or not 0 <= self.margin < 1:
            raise ValueError("oracle_noise must be >= 0 and oracle_margin in [0, 1)")

    def mastery(self, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen = np.asarray(truth, dtype=np.float64).copy()
        if self.noise:
            seen = np.clip(seen + rng.normal(0.0, self.noise, size=len(seen)), 0.0, 1.0)
        return seen


_START = datetime(2026, 3, 1, tzinfo=UTC)


def _service(catalog: Catalog, database: Path, models_dir: Path, clock: ManualClock) -> App:
    """A service of its own (SQLite file) with the catalog loaded; models are shared."""
    app = build_app(
        Settings(store_url=f"sqlite:///{database}", models_dir=models_dir, catalog_refresh_seconds=0), clock=clock
    )
    app.catalogs.upsert(catalog.skills.values(), catalog.modules.values(), catalog.roles.values(), replace=True)
    return app


def _train_on_histories(
    world: HiddenWorld,
    history: Sequence[HiddenLearner],
    seed: int,
    tmp: Path,
    models_dir: Path,
    config: TrainConfig,
    placement_items: int = 0,
) -> str:
    """The service as deployed: past learners' results in the same hidden world (each starting
    with the protocol's placement test, if any), then a model trained on them (BKT fit and
    LightFM, as `make run` trains on the demo's), ending the day before the simulated learners
    start. Returns the model version."""
    app = _service(world.catalog, tmp / "history.db", models_dir, ManualClock(_START))
    try:
        record_histories(app, world, list(enumerate(history)), seed, placement_items=placement_items)
        return app.training.train(config, force=True).version
    finally:
        app.close()


def _run_learner(
    app: App,
    clock: ManualClock,
    world: HiddenWorld,
    who: HiddenLearner,
    policy: str,
    popularity: Sequence[str],
    max_modules: int,
    rng: np.random.Generator,
    result: PolicyResult,
    oracle: OracleFeed,
    noise: np.random.Generator,
    protocol: Protocol,
    placement: np.random.Generator,
) -> None:
    catalog = world.catalog
    role = catalog.roles[who.learner.target_role_id]
    mastery = who.initial_mastery.copy()
    taken: list[str] = []
    minutes = 0.0
    readiness = true_readiness(role, catalog, mastery)
    syllabus = world_syllabus(world, role.role_id, who.learner) if policy == "syllabus" else []
    cursor, tries = 0, 0  # the syllabus: the module it is at, and the attempts on it so far
    ranked = [m for m in popularity if can_take(catalog.modules[m], who.learner)] if policy == "popularity" else []
    curve = [readiness]
    role_skills = np.array([catalog.skill_index[r.skill_id] for r in role.requirements], dtype=np.intp)
    checked_since_progress = False
    tracker = ParticleTracker.start(world, who.learner, noise) if policy == "bayes" else None
    placed = 0
    if protocol.placement_items and policy in READS_RESULTS:
        every_skill = tuple(r.skill_id for r in role.requirements)
        answers = _skill_check(
            app, clock, world, who, mastery, 0, placement, every_skill,
            items=protocol.placement_items, label="placement",
        )  # fmt: skip
        placed = sum(len(rights) for _, _, rights in answers)
        if tracker is not None:
            for skill, level, rights in answers:
                tracker.checked(skill, level, rights)
    while readiness < READY and len(taken) < max_modules:
        if tracker is not None:
            feed: np.ndarray | None = tracker.estimate()
            margin = BAYES_MARGIN
        else:
            feed = oracle.mastery(mastery, noise) if policy == "oracle" else None
            margin = oracle.margin
        # the mastery this decision is planned on (None for a fixed order)
        seen = _service_estimate(app, who) if policy in ("adaptive", NO_ROUTE) else feed
        step = (
            _study(syllabus[cursor % len(syllabus)])
            if policy == "syllabus" and syllabus
            else _next_step(app, who, policy, taken, syllabus, ranked, feed, margin)
        )
        if seen is not None:
            error = seen[role_skills] - mastery[role_skills]
            result.tracking_errors.append(float(np.abs(error).mean()))
            result.tracking_biases.append(float(error.mean()))
        if step is not None and step.kind is StepKind.SKILL_CHECK:
            _skill_check(app, clock, world, who, mastery, len(taken), rng, step.check_skill_ids)
            taken.append("")
            minutes += step.estimated_minutes
            curve.append(readiness)
            continue
        module_id = step.module_id if step is not None else None
        if module_id is None and policy in READS_RESULTS and not checked_since_progress:
            every_skill = tuple(r.skill_id for r in role.requirements)
            answers = _skill_check(app, clock, world, who, mastery, len(taken), rng, every_skill)
            if tracker is not None:
                for skill, level, rights in answers:
                    tracker.checked(skill, level, rights)
            checked_since_progress = True
            taken.append("")
            minutes += CHECK_MINUTES
            curve.append(readiness)
            continue
        if module_id is None:
            result.stopped_short += 1
            break
        checked_since_progress = False
        if _violates(world, module_id, taken, mastery):
            result.violations += 1
        mastery = forget(mastery, 1.0, who.forget_per_day)
        if can_take(catalog.modules[module_id], who.learner):
            score, mastery = attempt(world, who, mastery, module_id, rng)
        else:  # taught in a language the learner cannot follow (yet): nothing learnt, nothing right
            score = 0.0
        # the learner's Chinese rises as they truly pass the Chinese ladder's modules
        level = true_chinese_level(catalog, who.learner.chinese_level, mastery, protocol.pass_mark)
        if level != who.learner.chinese_level:
            who = replace(who, learner=replace(who.learner, chinese_level=level))
        if tracker is not None:
            tracker.forget(1.0)
            tracker.studied(module_id, score)
        if policy == "syllabus":
            tries += 1
            if score >= protocol.pass_mark or tries >= protocol.syllabus_attempts:
                cursor, tries = cursor + 1, 0
        clock.advance(days=1)
        event = AssessmentEvent(
            event_id=f"{who.learner.learner_id}-{len(taken):03d}",
            learner_id=who.learner.learner_id,
            module_id=module_id,
            score=score,
            occurred_at=clock(),
            kind=ResultKind.MODULE_ASSESSMENT,
        )
        app.learners.record_batch(DEFAULT_TENANT, [event])
        taken.append(module_id)
        minutes += catalog.modules[module_id].estimated_minutes
        after = true_readiness(role, catalog, mastery)
        if readiness < 1.0:
            result.gains.append((after - readiness) / (1.0 - readiness))
        readiness = after
        curve.append(readiness)
    reached = readiness >= READY
    result.modules.append(len(taken) if reached else max_modules)
    result.checks.append(taken.count(""))
    result.minutes.append(minutes)
    result.reached.append(reached)
    result.traces.append(taken)
    result.placement_items.append(placed)
    curve += [curve[-1]] * (max_modules + 1 - len(curve))
    n = len(result.modules)
    result.curve = [((n - 1) * old + new) / n for old, new in zip(result.curve or curve, curve, strict=True)]


def _skill_check(
    app: App,
    clock: ManualClock,
    world: HiddenWorld,
    who: HiddenLearner,
    mastery: np.ndarray,
    step: int,
    rng: np.random.Generator,
    skill_ids: Sequence[str],
    *,
    items: int = CHECK_ITEMS,
    label: str = "check",
) -> list[tuple[int, float, list[bool]]]:
    """`items` items per skill among `skill_ids`, filed under the first module teaching it that the
    learner can take; each item is right with a probability that mirrors being truly at the level
    asked (the role's level for a skill it requires, MASTERED for one a prerequisite teaches;
    ability-free), and the check teaches nothing. Returns (skill index, level, answers) per skill
    checked."""
    catalog = world.catalog
    events: list[AssessmentEvent] = []
    answers: list[tuple[int, float, list[bool]]] = []
    levels = {r.skill_id: r.level for r in catalog.roles[who.learner.target_role_id].requirements}
    for skill_id in skill_ids:
        teaching = [m for m in catalog.topological_order if skill_id in catalog.modules[m].skill_ids]
        # filed under one the learner can take, else (a check of a skill they meet only in Chinese
        # they cannot follow yet) the first that teaches it
        module_id = next((m for m in teaching if can_take(catalog.modules[m], who.learner)), None) or next(
            iter(teaching), None
        )
        if module_id is None:
            continue
        level = levels.get(skill_id, MASTERED)
        p = float(check_item_success(mastery[catalog.skill_index[skill_id]], level))
        rights = (rng.random(items) < p).tolist()
        answers.append((catalog.skill_index[skill_id], level, rights))
        events.extend(
            AssessmentEvent(
                event_id=f"{who.learner.learner_id}-{step:03d}-{label}-{skill_id}-{k}",
                learner_id=who.learner.learner_id,
                module_id=module_id,
                item_id=f"{label}-{k}",
                skill_ids=(skill_id,),
                score=float(right),
                occurred_at=clock(),
                kind=ResultKind.CHECK,
            )
            for k, right in enumerate(rights)
        )
    clock.advance(days=1)
    app.learners.record_batch(DEFAULT_TENANT, events)
    return answers


def _next_step(
    app: App,
    who: HiddenLearner,
    policy: str,
    taken: list[str],
    syllabus: list[str],
    ranked: list[str],
    feed: np.ndarray | None,
    margin: float,
) -> PathStep | None:
    """The policy's next step: a path's first step, or the next module of a fixed order. `feed`:
    the mastery the oracle or the particle filter plans on, with confidence margin `margin`; the
    adaptive policy asks the service."""
    request = PathRequest(who.learner.learner_id, max_steps=1)
    try:
        if policy == "adaptive":
            path = app.paths.recommend(DEFAULT_TENANT, request)
        elif policy == NO_ROUTE:
            # what RecommendPath plans, with Chinese only a filter at the declared level
            planner = app.paths.planner()
            found = app.store.get_learner_record(DEFAULT_TENANT, who.learner.learner_id)
            if found is None:
                return None
            options = replace(planner.options_for(found.learner, request), chinese_route=False)
            key = model_key(DEFAULT_TENANT, found.learner.learner_id)
            path = planner.plan(key, found.learner, found.states, options, app.clock(), found.studied_module_ids)
        elif feed is not None:
            planner = app.paths.planner()
            days = np.full(len(feed), 1.0)
            studied = Counter(m for m in taken if m)  # "" marks a readiness check
            state = LearnerState(who.learner, feed, feed.copy(), days, studied)
            # the feed is a level, not a probability: prerequisites at MASTERED, as _violates reads them
            options = replace(
                planner.options_for(who.learner, request),
                level_margin=margin,
                mastery_confidence=MASTERED,
                max_module_attempts=0,  # it knows the truth: a module it retakes still teaches
            )
            path = plan_path(planner.arrays, planner.kt, state, options, app.clock(), kernel=planner.kernel)
        else:
            path = None
    except LubanError:
        return None
    if path is not None:
        return path.steps[0] if path.steps else None
    # fixed orders are followed again from the start once finished (the learner re-studies)
    pool = syllabus if policy == "syllabus" else ranked
    return _study(pool[len(taken) % len(pool)]) if pool else None


def _service_estimate(app: App, who: HiddenLearner) -> np.ndarray:
    """The mastery the service plans this learner on now (forgetting applied, the prior where
    never practiced): what RecommendPath reads, in catalog.skill_ids order."""
    planner = app.paths.planner()
    found = app.store.get_learner_record(DEFAULT_TENANT, who.learner.learner_id)
    states = found.states if found is not None else ()
    return learner_state(planner.catalog, who.learner, states, planner.kt, planner.bkt, app.clock()).mastery


def _study(module_id: str) -> PathStep:
    return PathStep(0, module_id, 0.0, 0.0, (), 0, False, ())


def _violates(world: HiddenWorld, module_id: str, taken: list[str], mastery: np.ndarray) -> bool:
    """Whether a prerequisite of the module was neither taken before (a variant of it counts) nor
    truly mastered (its skills' mastery averaged by their weight in it, as the planner reads a
    prerequisite)."""
    catalog = world.catalog
    done = set(taken) | {world.variant_of[m] for m in taken if m in world.variant_of}
    for p in catalog.modules[module_id].prerequisite_module_ids:
        if p in done:
            continue
        prerequisite = catalog.modules[p]
        skills = [catalog.skill_index[s.skill_id] for s in prerequisite.skills]
        if np.average(mastery[skills], weights=[s.weight for s in prerequisite.skills]) < MASTERED:
            return True
    return False


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


def cohort_for(catalog: Catalog, world: str, learners: int, seed: int, *, past: bool = False) -> list[HiddenLearner]:
    """Simulated learners; on a Chinese-only catalog (Junyi) they all study in Chinese. `past`:
    other learners (their own ids and draws), whose histories train the model."""
    rng = np.random.default_rng([seed, 6] if past else [seed, 5])
    cohort = sample_learners(catalog, learners, rng, prefix="past" if past else "sim")
    if world == "junyi":
        cohort = [replace(h, learner=replace(h.learner, languages=("zh",), chinese_level=6)) for h in cohort]
    return cohort


def chinese_route_cohort(catalog: Catalog, learners: int, seed: int, *, draws: int = 4000) -> list[HiddenLearner]:
    """The first `learners` simulated learners (drawn as cohort_for draws the demo world's, up to
    `draws` of them) whose role needs modules taught only in Chinese above their HSK level: as new
    learners, some role skill is out of reach with Chinese only a filter at their declared level,
    and none is once the planner may climb the Chinese ladder. What `simulate --chinese-route`
    compares the adaptive policy and the language-blind one on."""
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    n = len(catalog.skill_ids)
    found: list[HiddenLearner] = []
    for who in sample_learners(catalog, draws, np.random.default_rng([seed, 5]), prefix="sim"):
        learner = who.learner
        state = LearnerState(learner, kt.prior.copy(), np.zeros(n), np.full(n, np.nan))
        options = PlanOptions(learner.target_role_id, learner.languages, max_steps=1)
        blind = _unreachable(arrays, kt, state, replace(options, chinese_route=False))
        if blind and not _unreachable(arrays, kt, state, options):
            found.append(who)
            if len(found) == learners:
                break
    return found


def _unreachable(arrays: CatalogArrays, kt: SkillParamArrays, state: LearnerState, options: PlanOptions) -> bool:
    """Whether some role skill is out of reach for the learner under these options."""
    try:
        return bool(plan_path(arrays, kt, state, options, _START).unreachable_skill_ids)
    except LubanError:  # no path at all: nothing in reach
        return True
