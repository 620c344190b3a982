"""`recommender simulate`: hidden-truth learners take recommended modules one at a time; their
results are recorded through the same service code as live assessments. The policies a user
compares, on the same learners and the same hidden truth:

- adaptive: RecommendPath after every result, take its first step. A skill-check step is taken as
  an item-level assessment of its skills (CHECK_ITEMS items per skill, each right with a probability
  that mirrors being truly at the role's level; it teaches nothing) and counted as one module and
  the step's minutes. When the planner believes the role is reached but the learner truly is not,
  the learner sits a readiness check (the same assessment of every role skill, counted as one module
  and CHECK_MINUTES): the platform's certification step. Both report item results through the same
  service code as live assessments;
- oracle: the same planner fed the hidden true mastery instead of the service's estimate (a
  diagnostic: what perfect knowledge tracing would give; the rest of the gap is the planner's);
- syllabus: the role's modules in prerequisite order (fixed, the same for everyone), one module
  per concept where a concept has a Chinese-only variant; under a `Protocol` with more than one
  attempt, a module scored below the pass mark is retaken, up to that many attempts, then the
  syllabus moves on; at its end it starts again.

A policy is a `Policy`: other ones (the research lab's, `python -m lab`) run through the same
loop, on the same draws, beside these.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from typing import Protocol as Interface

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
from recommender.service.recommend import PathRequest, learner_state, model_key
from recommender.simulation.truth import (
    FloatArray,
    HiddenLearner,
    HiddenWorld,
    attempt,
    can_take,
    check_item_success,
    forget,
    make_world,
    sample_learners,
    true_chinese_level,
    true_readiness,
    world_syllabus,
)
from recommender.storage.store import DEFAULT_TENANT

POLICIES = ("adaptive", "oracle", "syllabus")
# run only when asked: the adaptive policy with Chinese only a filter (NoRoute)
NO_ROUTE = "no-route"
CHECK_MINUTES = 60
CHECK_ITEMS = 10
MASTERED = 0.8  # a skill truly mastered: the family generator's floor of a known concept, the service's one confidence
READY = 1.0 - 1e-9
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Protocol:
    """How the simulated learners meet the service. `placement_items`: check items per role skill
    in a placement test before the first step (for the policies that read results; 0: none);
    `syllabus_attempts`: how often the syllabus policy takes a module scored below `pass_mark`
    before it moves on (1: once, whatever the score)."""

    placement_items: int = 0
    syllabus_attempts: int = 1
    pass_mark: float = 0.6

    def __post_init__(self) -> None:
        if self.placement_items < 0 or self.syllabus_attempts < 1 or not 0 <= self.pass_mark <= 1:
            raise ValueError("placement_items >= 0, syllabus_attempts >= 1 and pass_mark in [0, 1]")


DEMO_PROTOCOL = Protocol()
# the world families' evaluation protocol: 3 placement items per required skill, a syllabus that
# retakes a module below the pass mark up to 3 attempts
FAMILY_PROTOCOL = Protocol(placement_items=3, syllabus_attempts=3, pass_mark=0.6)

# (skill index, the level asked, the answers) per skill a check assessed
CheckAnswers = list[tuple[int, float, list[bool]]]


@dataclass
class LearnerRun:
    """One learner under one policy: what a policy may consult. `mastery` is the hidden truth
    now (the loop replaces it after every step); `taken` the steps so far ("" for a check);
    `draws` the policy's own random stream, apart from the learner's."""

    app: App
    world: HiddenWorld
    who: HiddenLearner
    protocol: Protocol
    mastery: FloatArray
    taken: list[str]
    draws: np.random.Generator


class Session:
    """A policy's decisions for one learner. The default reads no results: it ignores checks and
    studies (the service records them anyway)."""

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        """The next step (None: nothing more to give) and the mastery it was planned on, in
        catalog.skill_ids order (None: the policy plans on no estimate)."""
        raise NotImplementedError

    def checked(self, answers: CheckAnswers) -> None:
        """Check items answered (a placement test, a skill check or a readiness check)."""

    def studied(self, module_id: str, score: float) -> None:
        """A module taken after a day, and its score."""


class Policy(Interface):
    """A way of choosing a simulated learner's steps. `reads_results`: the learner sits the
    protocol's placement test first, and a readiness check when the policy believes the role
    reached; `label`: how the report names it beside the syllabus."""

    @property
    def name(self) -> str: ...

    @property
    def reads_results(self) -> bool: ...

    @property
    def label(self) -> str: ...

    def start(self, run: LearnerRun) -> Session: ...


@dataclass(frozen=True)
class Adaptive:
    """The service: RecommendPath after every result, its first step taken."""

    name: str = "adaptive"
    reads_results: bool = True
    label: str = "adaptive"

    def start(self, run: LearnerRun) -> Session:
        return _AdaptiveSession(run)


class _AdaptiveSession(Session):
    def __init__(self, run: LearnerRun) -> None:
        self.run = run

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        app, who = self.run.app, self.run.who
        seen = _service_estimate(app, who)
        try:
            path = app.paths.recommend(DEFAULT_TENANT, PathRequest(who.learner.learner_id, max_steps=1))
        except LubanError:
            return None, seen
        return (path.steps[0] if path.steps else None), seen


@dataclass(frozen=True)
class Oracle:
    """The same planner fed the hidden true mastery."""

    name: str = "oracle"
    reads_results: bool = False
    label: str = "oracle, the planner fed true mastery:"

    def start(self, run: LearnerRun) -> Session:
        return _OracleSession(run)


class _OracleSession(Session):
    def __init__(self, run: LearnerRun) -> None:
        self.run = run

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        feed = np.asarray(self.run.mastery, dtype=np.float64).copy()
        return plan_on_levels(self.run, feed), feed


@dataclass(frozen=True)
class Syllabus:
    """The role's modules in prerequisite order, with the protocol's retakes; followed again from
    the start once finished (the learner re-studies)."""

    name: str = "syllabus"
    reads_results: bool = False
    label: str = ""  # the baseline the others are compared with

    def start(self, run: LearnerRun) -> Session:
        return _SyllabusSession(run)


class _SyllabusSession(Session):
    def __init__(self, run: LearnerRun) -> None:
        self.run = run
        self.order = world_syllabus(run.world, run.who.learner.target_role_id, run.who.learner)
        self.cursor, self.tries = 0, 0  # the module it is at, and the attempts on it so far

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        return (study_step(self.order[self.cursor % len(self.order)]) if self.order else None), None

    def studied(self, module_id: str, score: float) -> None:
        self.tries += 1
        if score >= self.run.protocol.pass_mark or self.tries >= self.run.protocol.syllabus_attempts:
            self.cursor, self.tries = self.cursor + 1, 0


@dataclass(frozen=True)
class NoRoute:
    """The service with Chinese only a filter at the declared HSK level (PlanOptions.chinese_route
    off): the language-blind baseline of `simulate --chinese-route`."""

    name: str = NO_ROUTE
    reads_results: bool = True
    label: str = "no-route, Chinese only a filter:"

    def start(self, run: LearnerRun) -> Session:
        return _NoRouteSession(run)


class _NoRouteSession(Session):
    def __init__(self, run: LearnerRun) -> None:
        self.run = run

    def decide(self) -> tuple[PathStep | None, FloatArray | None]:
        app, who = self.run.app, self.run.who
        seen = _service_estimate(app, who)
        planner = app.paths.planner()
        found = app.store.get_learner_record(DEFAULT_TENANT, who.learner.learner_id)
        if found is None:
            return None, seen
        request = PathRequest(who.learner.learner_id, max_steps=1)
        try:
            options = replace(planner.options_for(found.learner, request), chinese_route=False)
            key = model_key(DEFAULT_TENANT, found.learner.learner_id)
            path = planner.plan(key, found.learner, found.states, options, app.clock(), found.studied_module_ids)
        except LubanError:
            return None, seen
        return (path.steps[0] if path.steps else None), seen


PRODUCT_POLICIES: Mapping[str, Policy] = {p.name: p for p in (Adaptive(), Oracle(), Syllabus(), NoRoute())}


def plan_on_levels(run: LearnerRun, feed: FloatArray, arrays: CatalogArrays | None = None) -> PathStep | None:
    """The service's planner fed `feed` as the learner's levels (not a probability): the first
    step of that path, None when there is none. Prerequisites count at MASTERED, as `_violates`
    reads them; a module is never given up (whoever knows the truth knows a retaken module still
    teaches). `arrays`: the catalog arrays to plan over (default: the service's)."""
    app, who = run.app, run.who
    request = PathRequest(who.learner.learner_id, max_steps=1)
    try:
        planner = app.paths.planner()
        days = np.full(len(feed), 1.0)
        studied = Counter(m for m in run.taken if m)  # "" marks a check
        state = LearnerState(who.learner, feed, feed.copy(), days, studied)
        options = replace(
            planner.options_for(who.learner, request),
            mastery_is_level=True,
            mastery_confidence=MASTERED,
            max_module_attempts=0,
        )
        path = plan_path(arrays or planner.arrays, planner.kt, state, options, app.clock(), kernel=planner.kernel)
    except LubanError:
        return None
    return path.steps[0] if path.steps else None


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
    reset_degenerate_bkt: bool = True  # how the model was trained (TrainConfig)
    # per policy compared with the syllabus, how the table names it (Policy.label)
    labels: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # what else the JSON records (a lab's settings)
    training: Mapping[str, Any] = field(default_factory=dict)  # the model's TrainConfig.recorded(); {} without one

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
            "reset_degenerate_bkt": self.reset_degenerate_bkt,
            "training": dict(self.training),
            **self.extra,
            "policies": policies,
            **{
                key: value
                for name in dict.fromkeys(["adaptive", "oracle", *self._compared()])
                for key, value in (
                    (f"{name}_vs_syllabus_module_reduction", reduction(name)),
                    (f"{name}_vs_syllabus_module_reduction_ci95", interval(name)),
                )
            },
            "curves": {name: r.curve for name, r in self.results.items()},
        }

    def _compared(self) -> list[str]:
        """The policies the table compares with the syllabus, in run order."""
        return [name for name in self.results if self.labels.get(name)] if "syllabus" in self.results else []

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

        def versus(name: str) -> str:
            low, high = doc[f"{name}_vs_syllabus_module_reduction_ci95"]
            return f"{doc[f'{name}_vs_syllabus_module_reduction']:.1%} (95% CI {low:.1%} to {high:.1%})"

        for k, name in enumerate(self._compared()):
            lines.append(
                ("fewer modules than the syllabus: " if k == 0 else "  ") + f"{self.labels[name]} {versus(name)}"
            )
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
    policies: Sequence[str | Policy] = POLICIES,
    workdir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    history: Sequence[HiddenLearner] = (),
    train_config: TrainConfig | None = None,
    world: HiddenWorld | None = None,
    protocol: Protocol = DEMO_PROTOCOL,
    extra: Mapping[str, Any] | None = None,
) -> SimulationReport:
    """Every policy (a name of PRODUCT_POLICIES, or a Policy) on the same learners and hidden
    world (`world`, whose catalog must be `catalog`; by default the demo dynamics over `catalog`
    with module effects drawn from the seed), under `protocol`. With `history`, those learners'
    past results in the world train a model first (with `train_config`, default TrainConfig()), and
    every policy's service runs with it active. `extra` goes into the report's JSON as it is."""
    chosen = [PRODUCT_POLICIES[p] if isinstance(p, str) else p for p in policies]
    if world is None:
        world = make_world(catalog, np.random.default_rng([seed, 99]))
    elif world.catalog is not catalog:
        raise ValueError("the world must be built on the catalog simulated")
    results: dict[str, PolicyResult] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        models_dir = Path(tmp) / "m"
        config = train_config if train_config is not None else TrainConfig()
        version = (
            _train_on_histories(world, history, seed, Path(tmp), models_dir, config, protocol.placement_items)
            if history
            else ""
        )
        for policy in chosen:
            clock = ManualClock(_START)
            app = _service(catalog, Path(tmp) / f"{policy.name}.db", models_dir, clock)
            try:
                if version:
                    app.models.activate(version)
                app.learners.upsert_many(DEFAULT_TENANT, [h.learner for h in cohort])
                active = app.models.active()
                result = PolicyResult(policy.name, model_version=active.version if active else "")
                for i, who in enumerate(cohort):
                    draws = _Draws(
                        learner=np.random.default_rng([seed, i]),  # the same for every policy
                        policy=np.random.default_rng([seed, i, 17]),  # the policy's own
                        placement=np.random.default_rng([seed, i, 29]),  # the placement test's own
                    )
                    _run_learner(app, clock, world, who, policy, max_modules, draws, result, protocol)
                    if progress:
                        progress(1)
                results[policy.name] = result
            finally:
                app.close()
    return SimulationReport(
        world_name, len(cohort), max_modules, seed, results, version, len(history),
        config.fit_bkt and config.reset_degenerate_bkt and bool(history), {p.name: p.label for p in chosen},
        dict(extra or {}), config.recorded() if history else {},
    )  # fmt: skip


@dataclass(frozen=True)
class _Draws:
    """One learner's random streams, apart so that one policy's draws never shift another's."""

    learner: np.random.Generator  # outcomes: scores, check answers
    policy: np.random.Generator
    placement: np.random.Generator


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
    policy: Policy,
    max_modules: int,
    draws: _Draws,
    result: PolicyResult,
    protocol: Protocol,
) -> None:
    catalog = world.catalog
    role = catalog.roles[who.learner.target_role_id]
    run = LearnerRun(app, world, who, protocol, who.initial_mastery.copy(), [], draws.policy)
    taken = run.taken
    minutes = 0.0
    readiness = true_readiness(role, catalog, run.mastery)
    curve = [readiness]
    role_skills = np.array([catalog.skill_index[r.skill_id] for r in role.requirements], dtype=np.intp)
    every_skill = tuple(r.skill_id for r in role.requirements)
    checked_since_progress = False
    session = policy.start(run)
    placed = 0
    if protocol.placement_items and policy.reads_results:
        answers = _skill_check(
            app, clock, world, who, run.mastery, 0, draws.placement, every_skill,
            items=protocol.placement_items, label="placement",
        )  # fmt: skip
        placed = sum(len(rights) for _, _, rights in answers)
        session.checked(answers)
    while readiness < READY and len(taken) < max_modules:
        step, seen = session.decide()
        if seen is not None:
            error = seen[role_skills] - run.mastery[role_skills]
            result.tracking_errors.append(float(np.abs(error).mean()))
            result.tracking_biases.append(float(error.mean()))
        if step is not None and step.kind is StepKind.SKILL_CHECK:
            session.checked(
                _skill_check(app, clock, world, who, run.mastery, len(taken), draws.learner, step.check_skill_ids)
            )
            taken.append("")
            minutes += step.estimated_minutes
            curve.append(readiness)
            continue
        module_id = step.module_id if step is not None else None
        if module_id is None and policy.reads_results and not checked_since_progress:
            session.checked(_skill_check(app, clock, world, who, run.mastery, len(taken), draws.learner, every_skill))
            checked_since_progress = True
            taken.append("")
            minutes += CHECK_MINUTES
            curve.append(readiness)
            continue
        if module_id is None:
            result.stopped_short += 1
            break
        checked_since_progress = False
        if _violates(world, module_id, taken, run.mastery):
            result.violations += 1
        run.mastery = forget(run.mastery, 1.0, who.forget_per_day)
        if can_take(catalog.modules[module_id], who.learner):
            score, run.mastery = attempt(world, who, run.mastery, module_id, draws.learner)
        else:  # taught in a language the learner cannot follow (yet): nothing learnt, nothing right
            score = 0.0
        # the learner's Chinese rises as they truly pass the Chinese ladder's modules
        level = true_chinese_level(catalog, who.learner.chinese_level, run.mastery, protocol.pass_mark)
        if level != who.learner.chinese_level:
            who = run.who = replace(who, learner=replace(who.learner, chinese_level=level))
        session.studied(module_id, score)
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
        after = true_readiness(role, catalog, run.mastery)
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


def _service_estimate(app: App, who: HiddenLearner) -> np.ndarray:
    """The mastery the service plans this learner on now (forgetting applied, the prior where
    never practiced): what RecommendPath reads, in catalog.skill_ids order."""
    planner = app.paths.planner()
    found = app.store.get_learner_record(DEFAULT_TENANT, who.learner.learner_id)
    states = found.states if found is not None else ()
    return learner_state(planner.catalog, who.learner, states, planner.kt, planner.bkt, app.clock()).mastery


def study_step(module_id: str) -> PathStep:
    """A step that takes one module (a fixed order's)."""
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
