"""What program staff and ML engineers look at (the dashboard): a tenant's cohorts planned to
readiness, the modules and translations that would unblock most of its learners, one learner's
page, and the model registry with its evaluations. Read-only use cases over the store, the planner
and the registry.

A tenant's cohort figures come from one snapshot: every learner of the tenant read in one
transaction and planned together (Planner.plan_many, vectorized) toward readiness. A snapshot is
kept until the tenant's learners change (checked at most every `refresh_seconds`), the catalog
changes or another model is activated, so a dashboard request aggregates arrays rather than
re-planning thousands of learners.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.catalog import Catalog
from recommender.domain.jobs import TrainingJob
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, Reason, ReasonCode, StopReason
from recommender.domain.profile import LearnerRecord, SkillProfile
from recommender.errors import LubanError, PreconditionFailed
from recommender.kt.bkt import SECONDS_PER_DAY
from recommender.ml.artifacts import read_meta
from recommender.planner.arrays import primary_language
from recommender.service.app import App
from recommender.service.models import ModelInfo
from recommender.service.recommend import MAX_STEPS, PathRequest, PlanItem, Planner, learner_state, model_key

log = logging.getLogger("recommender.insights")
FloatArray = npt.NDArray[np.float64]
READINESS_BINS = 10
# a path to readiness: as many steps as a path may have; a learner not ready by then counts as
# "not within reach of the planned path"
TO_READINESS_STEPS = MAX_STEPS
DEFAULT_STALLED_DAYS = 14
# more changed learners than this since a snapshot: plan the whole tenant again (in the background)
INCREMENTAL_LIMIT = 2000
REBUILD_SECONDS = 3600.0  # forgetting moves everyone's mastery: re-plan the whole tenant hourly
REPEATED = (ReasonCode.NEEDS_SUPPORT,)  # a step that retakes a module failed max_module_attempts - 1 times


@dataclass(frozen=True)
class Row:
    """One learner in a snapshot: what their planned path toward readiness says."""

    learner: Learner
    error: str  # why there is no path ("" when there is one)
    readiness_now: float  # NaN without a path
    readiness_after: float
    modules_to_ready: float  # NaN when the path does not reach readiness
    hours_to_ready: float
    days_since_practice: float  # NaN when never assessed
    role_mastery: FloatArray | None  # mastery now of each skill the target role requires (requirement order)
    failing: tuple[str, ...]  # modules failed again and again
    blockers: tuple[Reason, ...]  # what keeps a role skill out of reach
    # modules taught only in Chinese above the learner's level that the path climbs the Chinese
    # ladder to reach (REASON_CODE_LANGUAGE_UNLOCK)
    unlocks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """One tenant's learners, planned toward readiness; the arrays are in learner-id order."""

    tenant: str
    key: tuple[object, ...]  # (catalog revision, model version, *store.learners_version)
    # learners changed after it (store microseconds) are not in it yet; two writers' changes in one
    # microsecond could hide one of them until the hourly rebuild
    watermark: int
    as_of: datetime  # when its oldest rows were planned
    catalog: Catalog
    mastery_confidence: float
    rows: Mapping[str, Row]
    learners: tuple[Learner, ...]
    readiness_now: FloatArray
    readiness_after: FloatArray
    modules_to_ready: FloatArray
    hours_to_ready: FloatArray
    days_since_practice: FloatArray
    built_seconds: float  # the last full build
    replanned: int  # learners planned by the last build or refresh

    @classmethod
    def of(
        cls, tenant: str, key: tuple[object, ...], planner: Planner, rows: Mapping[str, Row], as_of: datetime,
        built_seconds: float, replanned: int,
    ) -> Snapshot:  # fmt: skip
        ordered = dict(sorted(rows.items()))
        values = list(ordered.values())

        def column(name: str) -> FloatArray:
            return np.array([getattr(r, name) for r in values], dtype=np.float64)

        return cls(
            tenant=tenant,
            key=key,
            watermark=max(int(key[3]), int(key[4])),  # type: ignore[call-overload]
            as_of=as_of,
            catalog=planner.catalog,
            mastery_confidence=planner.mastery_confidence,
            rows=ordered,
            learners=tuple(r.learner for r in values),
            readiness_now=column("readiness_now"),
            readiness_after=column("readiness_after"),
            modules_to_ready=column("modules_to_ready"),
            hours_to_ready=column("hours_to_ready"),
            days_since_practice=column("days_since_practice"),
            built_seconds=built_seconds,
            replanned=replanned,
        )


@dataclass(frozen=True)
class Quantiles:
    median: float
    p90: float


@dataclass(frozen=True)
class StalledLearner:
    learner_id: str
    cohort_id: str
    role_id: str
    days_since_practice: float  # NaN: never assessed
    failing_module_ids: tuple[str, ...]


@dataclass(frozen=True)
class Heatmap:
    role_ids: tuple[str, ...]
    skill_ids: tuple[str, ...]
    # share of the role's learners below the required mastery, per (role, skill); NaN where the role
    # does not require the skill
    below: FloatArray
    learners: tuple[int, ...]  # learners per role


@dataclass(frozen=True)
class CohortOverview:
    tenant: str
    cohort_id: str  # "" = every cohort
    role_id: str  # "" = every role
    cohorts: tuple[tuple[str, int], ...]  # the tenant's cohorts and their sizes, for choosing
    roles: tuple[tuple[str, int], ...]
    learners: int
    planned: int
    not_planned: tuple[tuple[str, int], ...]  # why learners have no path, with counts
    readiness_now: tuple[int, ...]  # learners per readiness bin (READINESS_BINS equal bins of [0, 1])
    readiness_after: tuple[int, ...]
    mean_now: float
    mean_after: float
    reach: int  # learners whose planned path reaches readiness
    modules: Quantiles
    hours: Quantiles
    heatmap: Heatmap
    stalled_days: int
    stalled: tuple[StalledLearner, ...]
    as_of: datetime
    built_seconds: float


@dataclass(frozen=True)
class Priority:
    """One translation or catalog gap, with the learners it holds back."""

    kind: str  # translate | teach
    module_id: str  # "" for teach
    skill_id: str
    language: str  # "" for teach: no module in any language
    learners: int


@dataclass(frozen=True)
class Priorities:
    translations: tuple[Priority, ...]  # (module, language) pairs, most learners unblocked first
    untaught: tuple[Priority, ...]  # (skill, language): no module in the language teaches the skill
    learners: int
    blocked: int  # learners with any language or catalog blocker
    as_of: datetime


@dataclass(frozen=True)
class LearnerPage:
    learner: Learner
    profile: SkillProfile
    path: LearningPath | None
    path_error: str
    events: tuple[AssessmentEvent, ...]


@dataclass(frozen=True)
class ModelEvaluation:
    info: ModelInfo
    split: str
    metrics: Mapping[str, Mapping[str, float]]  # model (luban and baselines) -> metric -> value
    calibration: Sequence[tuple[float, float, int]]  # (mean predicted, observed rate, events) per bin
    counts: Mapping[str, int]


class Insights:
    """The dashboard's use cases over one App."""

    def __init__(self, app: App, refresh_seconds: float = 60.0) -> None:
        self._app = app
        self._refresh_seconds = refresh_seconds
        self._lock = threading.RLock()
        self._snapshots: dict[str, tuple[Snapshot, float]] = {}  # tenant -> (snapshot, checked; monotonic)
        self._building: set[str] = set()  # tenants rebuilt in the background now

    # snapshots ------------------------------------------------------------------------------
    def snapshot(self, tenant: str, *, wait: bool = False) -> Snapshot:
        """The tenant's snapshot. Learners changed since it was made are re-planned (only they);
        after a catalog change, a model activation or an erasure, or when it is older than
        REBUILD_SECONDS, the whole tenant is planned again in the background (or now, `wait`)
        while the older figures, with their time, keep answering. Only a tenant's first snapshot
        is built while the caller waits."""
        planner = self._app.paths.planner(tenant=tenant)
        found = self._snapshots.get(tenant)
        if (
            found is not None
            and time.monotonic() - found[1] < self._refresh_seconds
            and found[0].key[:2] == (planner.catalog.revision, planner.model_version)
            and not wait
        ):
            return found[0]
        with self._lock:
            version = self._app.store.learners_version(tenant)
            key = (planner.catalog.revision, planner.model_version, *version)
            found = self._snapshots.get(tenant)
            if found is None:
                snapshot = full_snapshot(self._app, tenant, planner, key)
            else:
                snapshot = found[0]
                too_old = (self._app.clock() - snapshot.as_of).total_seconds() > REBUILD_SECONDS
                if snapshot.key[:2] != key[:2] or too_old:
                    snapshot = self._rebuild(tenant, planner, key, snapshot, wait)
                elif snapshot.key != key:
                    changed = self._app.store.changed_learners(tenant, snapshot.watermark)
                    if len(changed) > INCREMENTAL_LIMIT:
                        snapshot = self._rebuild(tenant, planner, key, snapshot, wait)
                    else:
                        snapshot = refreshed_snapshot(self._app, snapshot, planner, key, changed)
                        if len(snapshot.rows) != version[0]:  # erased learners: only a full build drops them
                            snapshot = self._rebuild(tenant, planner, key, snapshot, wait)
            self._snapshots[tenant] = (snapshot, time.monotonic())
            return snapshot

    def refreshing(self, tenant: str) -> bool:
        """Whether the tenant's figures are being rebuilt in the background."""
        return tenant in self._building

    def warm(self, tenants: Sequence[str]) -> threading.Thread:
        """Build the tenants' first snapshots in the background (at start, before anyone asks)."""

        def run() -> None:
            for tenant in tenants:
                try:
                    self.snapshot(tenant)
                except LubanError as exc:  # no catalog yet, a store outage: the first request says so
                    log.info("no dashboard figures for %s yet: %s", tenant, exc)

        thread = threading.Thread(target=run, name="dashboard-warm", daemon=True)
        thread.start()
        return thread

    def _rebuild(
        self, tenant: str, planner: Planner, key: tuple[object, ...], current: Snapshot, wait: bool
    ) -> Snapshot:
        """A full build: now when `wait`, else in the background, answering with `current` meanwhile."""
        if wait:
            return full_snapshot(self._app, tenant, planner, key)
        if tenant not in self._building:
            self._building.add(tenant)

            def run() -> None:
                try:
                    built = full_snapshot(self._app, tenant, planner, key)
                    with self._lock:
                        self._snapshots[tenant] = (built, time.monotonic())
                except Exception:
                    log.exception("rebuilding the dashboard figures of %s failed", tenant)
                finally:
                    self._building.discard(tenant)

            threading.Thread(target=run, name=f"dashboard-{tenant}", daemon=True).start()
        return current

    def overview(
        self, tenant: str, cohort_id: str = "", role_id: str = "", stalled_days: int = DEFAULT_STALLED_DAYS
    ) -> CohortOverview:
        return cohort_overview(self.snapshot(tenant), cohort_id, role_id, stalled_days)

    def cohorts(self, tenant: str) -> tuple[tuple[str, int], ...]:
        """The tenant's cohorts and their sizes, largest first."""
        return _counts(x.cohort_id for x in self.snapshot(tenant).learners)

    def priorities(self, tenant: str, cohort_id: str = "") -> Priorities:
        return priorities(self.snapshot(tenant), cohort_id)

    # one learner ----------------------------------------------------------------------------
    def learner(self, tenant: str, learner_id: str) -> LearnerPage:
        """NotFound for a learner of another tenant, as for one that does not exist."""
        learner = self._app.learners.get(tenant, learner_id)
        profile = self._app.learners.profile(tenant, learner_id)
        path: LearningPath | None = None
        error = ""
        try:
            path = self._app.paths.recommend(tenant, PathRequest(learner_id))
        except LubanError as exc:  # no target role or language yet: the page says why
            error = str(exc)
        events = tuple(self._app.store.events_of(tenant, learner_id))
        return LearnerPage(learner, profile, path, error, events)

    # models ---------------------------------------------------------------------------------
    def models(self, tenant: str) -> list[ModelEvaluation]:
        registry = self._app.models
        out = []
        for info in registry.list(tenant):
            meta = read_meta(registry.folder(info.version, tenant))
            out.append(model_evaluation(info, meta))
        return out

    def jobs(self, tenant: str) -> list[TrainingJob]:
        return self._app.training.jobs(tenant)


def full_snapshot(app: App, tenant: str, planner: Planner, key: tuple[object, ...]) -> Snapshot:
    started = time.perf_counter()
    now = app.clock()
    ids = [learner.learner_id for _, learner in app.store.iter_learners(tenant)]
    rows = plan_rows(app, tenant, planner, ids, now)
    return Snapshot.of(tenant, key, planner, rows, now, time.perf_counter() - started, len(rows))


def refreshed_snapshot(
    app: App, snapshot: Snapshot, planner: Planner, key: tuple[object, ...], changed: Sequence[str]
) -> Snapshot:
    """The snapshot with the `changed` learners planned again (added ones joining it)."""
    rows = plan_rows(app, snapshot.tenant, planner, changed, app.clock())
    merged = {**snapshot.rows, **rows}
    return Snapshot.of(snapshot.tenant, key, planner, merged, snapshot.as_of, snapshot.built_seconds, len(rows))


def plan_rows(app: App, tenant: str, planner: Planner, ids: Sequence[str], now: datetime) -> dict[str, Row]:
    """The learners' rows: read in one transaction, planned together (plan_many) toward readiness."""
    records = app.store.get_learner_records(tenant, ids)
    learners = [records[i].learner for i in ids if i in records]
    errors: dict[str, str] = {}
    items: list[PlanItem] = []
    for learner in learners:
        record = records[learner.learner_id]
        try:
            options = planner.options_for(learner, PathRequest(learner.learner_id, TO_READINESS_STEPS))
        except LubanError as exc:
            errors[learner.learner_id] = _why(exc)
            continue
        items.append(
            PlanItem(model_key(tenant, learner.learner_id), learner, record.states, options, record.studied_module_ids)
        )
    paths: dict[str, LearningPath] = {}
    for item, planned in zip(items, planner.plan_many(items, now), strict=True):
        if isinstance(planned, PreconditionFailed):
            errors[item.learner.learner_id] = _why(planned)
        else:
            paths[item.learner.learner_id] = planned
    mastery = _role_mastery(planner, learners, records, now)
    out: dict[str, Row] = {}
    for learner in learners:
        path = paths.get(learner.learner_id)
        states = records[learner.learner_id].states
        days = math.nan
        if states:
            last = max(s.last_practiced_at for s in states)
            days = max((now - last).total_seconds(), 0.0) / SECONDS_PER_DAY
        ready = path is not None and path.stop_reason is StopReason.ROLE_READY
        out[learner.learner_id] = Row(
            learner=learner,
            error=errors.get(learner.learner_id, ""),
            readiness_now=path.readiness_now if path else math.nan,
            readiness_after=path.readiness_after if path else math.nan,
            modules_to_ready=len(path.steps) if path and ready else math.nan,
            hours_to_ready=sum(s.estimated_minutes for s in path.steps) / 60.0 if path and ready else math.nan,
            days_since_practice=days,
            role_mastery=mastery.get(learner.learner_id),
            failing=_failing(path) if path else (),
            blockers=path.blockers if path else (),
            unlocks=_unlocks(path) if path else (),
        )
    return out


def _unlocks(path: LearningPath) -> tuple[str, ...]:
    """The modules the path's Chinese route leads to, in path order."""
    found = {r.params["module_id"]: None for s in path.steps for r in s.reasons if r.code is ReasonCode.LANGUAGE_UNLOCK}
    return tuple(found)


def _why(exc: LubanError) -> str:
    """A short, stable cause for grouping learners without a path."""
    kind = getattr(exc, "type", "")
    return str(kind or type(exc).__name__)


def _failing(path: LearningPath) -> tuple[str, ...]:
    """Modules the learner failed again and again: what stopped the path, or what it retakes with
    a teacher's support."""
    found: dict[str, None] = {}
    if path.stop_reason is StopReason.REPEATED_FAILURE:
        for reason in path.blockers:
            if "module_id" in reason.params:
                found[reason.params["module_id"]] = None
    for step in path.steps:
        if any(r.code in REPEATED for r in step.reasons):
            found[step.module_id] = None
    return tuple(found)


def _role_mastery(
    planner: Planner, learners: Sequence[Learner], records: Mapping[str, LearnerRecord], now: datetime
) -> dict[str, FloatArray]:
    """Per learner with a target role: their mastery now (forgetting applied) of each skill the
    role requires, in requirement order."""
    catalog = planner.catalog
    out: dict[str, FloatArray] = {}
    for learner in learners:
        role = catalog.roles.get(learner.target_role_id)
        if role is None:
            continue
        columns = [catalog.skill_index[r.skill_id] for r in role.requirements]
        record = records[learner.learner_id]
        if record.states:
            state = learner_state(catalog, learner, record.states, planner.kt, planner.bkt, now)
            out[learner.learner_id] = state.mastery[columns]
        else:
            out[learner.learner_id] = planner.kt.prior[columns]
    return out


def _quantiles(values: FloatArray) -> Quantiles:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return Quantiles(math.nan, math.nan)
    return Quantiles(float(np.median(finite)), float(np.quantile(finite, 0.9)))


def _histogram(values: FloatArray) -> tuple[int, ...]:
    finite = values[np.isfinite(values)]
    which = np.minimum((np.clip(finite, 0.0, 1.0) * READINESS_BINS).astype(np.int64), READINESS_BINS - 1)
    return tuple(int(x) for x in np.bincount(which, minlength=READINESS_BINS))


def _counts(values: Iterable[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def cohort_overview(snapshot: Snapshot, cohort_id: str, role_id: str, stalled_days: int) -> CohortOverview:
    """The figures of the learners of one cohort (all when "") aiming at one role (all when "")."""
    learners = snapshot.learners
    rows = list(snapshot.rows.values())
    cohorts = _counts(x.cohort_id for x in learners)
    roles = _counts(x.target_role_id for x in learners if x.target_role_id)
    chosen = np.array(
        [
            (not cohort_id or x.cohort_id == cohort_id) and (not role_id or x.target_role_id == role_id)
            for x in learners
        ],
        dtype=bool,
    )
    planned = chosen & np.isfinite(snapshot.readiness_now)
    not_planned = _counts(rows[i].error for i in np.flatnonzero(chosen & ~planned))
    now, after = snapshot.readiness_now[planned], snapshot.readiness_after[planned]
    stalled: list[StalledLearner] = []
    days = snapshot.days_since_practice
    for row in np.flatnonzero(chosen):
        late = bool(days[row] >= stalled_days)  # NaN (never assessed) is not stalled: not started
        if late or rows[row].failing:
            x = learners[row]
            stalled.append(
                StalledLearner(x.learner_id, x.cohort_id, x.target_role_id, float(days[row]), rows[row].failing)
            )
    stalled.sort(key=lambda s: (-len(s.failing_module_ids), -(0 if math.isnan(s.days_since_practice) else
                                                                 s.days_since_practice), s.learner_id))  # fmt: skip
    return CohortOverview(
        tenant=snapshot.tenant,
        cohort_id=cohort_id,
        role_id=role_id,
        cohorts=cohorts,
        roles=roles,
        learners=int(chosen.sum()),
        planned=int(planned.sum()),
        not_planned=not_planned,
        readiness_now=_histogram(now),
        readiness_after=_histogram(after),
        mean_now=float(now.mean()) if len(now) else math.nan,
        mean_after=float(after.mean()) if len(after) else math.nan,
        reach=int(np.isfinite(snapshot.modules_to_ready[planned]).sum()),
        modules=_quantiles(snapshot.modules_to_ready[planned]),
        hours=_quantiles(snapshot.hours_to_ready[planned]),
        heatmap=_heatmap(snapshot, chosen),
        stalled_days=stalled_days,
        stalled=tuple(stalled),
        as_of=snapshot.as_of,
        built_seconds=snapshot.built_seconds,
    )


def _heatmap(snapshot: Snapshot, chosen: npt.NDArray[np.bool_]) -> Heatmap:
    """Per role of the chosen learners and per skill any of those roles requires: the share of the
    role's learners whose mastery now is below the mastery a requirement asks (the one confidence)."""
    catalog = snapshot.catalog
    by_role: dict[str, list[FloatArray]] = defaultdict(list)
    for row, picked in zip(snapshot.rows.values(), chosen.tolist(), strict=True):
        if picked and row.role_mastery is not None:
            by_role[row.learner.target_role_id].append(row.role_mastery)
    role_ids = sorted(by_role)
    skills = sorted({q.skill_id for r in role_ids for q in catalog.roles[r].requirements})
    column = {s: j for j, s in enumerate(skills)}
    below = np.full((len(role_ids), len(skills)), math.nan)
    for i, role_id in enumerate(role_ids):
        shares = (np.vstack(by_role[role_id]) < snapshot.mastery_confidence).mean(axis=0)
        for q, share in zip(catalog.roles[role_id].requirements, shares, strict=True):
            below[i, column[q.skill_id]] = share
    return Heatmap(tuple(role_ids), tuple(skills), below, tuple(len(by_role[r]) for r in role_ids))


def priorities(snapshot: Snapshot, cohort_id: str = "") -> Priorities:
    """From the planned paths' blockers: a module taught only in other languages (or in Chinese
    above the learner's HSK level) is a translation that would unblock the skill for the learner,
    in the learner's first language; a skill no module teaches at all is a catalog gap. A module
    taught only in Chinese that a path climbs the Chinese ladder to reach is a translation too: it
    would spare the learner the climb. Each learner counts once per (module, language) and per
    (skill, language)."""
    translate: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    untaught: dict[tuple[str, str], set[int]] = defaultdict(set)
    blocked: set[int] = set()
    considered = 0
    for row, entry in enumerate(snapshot.rows.values()):
        learner = entry.learner
        if cohort_id and learner.cohort_id != cohort_id:
            continue
        considered += 1
        if not learner.languages:
            continue
        language = primary_language(learner.languages[0])
        for reason in entry.blockers:
            skill = reason.params.get("skill_id", "")
            if reason.code in (ReasonCode.LANGUAGE_BLOCKED, ReasonCode.CHINESE_LEVEL_BLOCKED):
                translate[(reason.params["module_id"], language, skill)].add(row)
                untaught[(skill, language)].add(row)
                blocked.add(row)
            elif reason.code is ReasonCode.NOT_IN_CATALOG:
                untaught[(skill, "")].add(row)
                blocked.add(row)
        role = snapshot.catalog.roles.get(learner.target_role_id) if entry.unlocks else None
        required = {q.skill_id for q in role.requirements} if role is not None else set()
        for module_id in entry.unlocks:
            taught = snapshot.catalog.modules[module_id].skill_ids
            for skill in [s for s in taught if s in required] or list(taught):
                translate[(module_id, language, skill)].add(row)
    by_module: dict[tuple[str, str], set[int]] = defaultdict(set)
    skill_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (module_id, language, skill), who in translate.items():
        by_module[(module_id, language)] |= who
        skill_of[(module_id, language)].add(skill)
    translations = sorted(
        (
            Priority("translate", m, ", ".join(sorted(skill_of[(m, lang)])), lang, len(who))
            for (m, lang), who in by_module.items()
        ),
        key=lambda p: (-p.learners, p.module_id, p.language),
    )
    gaps = sorted(
        (Priority("teach", "", s, lang, len(who)) for (s, lang), who in untaught.items()),
        key=lambda p: (-p.learners, p.skill_id, p.language),
    )
    return Priorities(tuple(translations), tuple(gaps), considered, len(blocked), snapshot.as_of)


def model_evaluation(info: ModelInfo, meta: Mapping[str, Any]) -> ModelEvaluation:
    """A version's stored evaluation: every model's metrics on the same split, and the reliability
    bins of its calibration plot (absent in versions trained before they were recorded)."""
    evaluation = meta.get("evaluation") if isinstance(meta.get("evaluation"), dict) else {}
    assert isinstance(evaluation, dict)
    models = evaluation.get("models") or meta.get("metrics") or {}
    metrics = {
        str(name): {str(k): float(v) for k, v in values.items() if isinstance(v, int | float)}
        for name, values in models.items()
        if isinstance(values, dict)
    }
    bins = evaluation.get("calibration", {}).get("luban", []) if isinstance(evaluation.get("calibration"), dict) else []
    calibration = [(float(p), float(o), int(c)) for p, o, c in bins if c]
    counts = {str(k): int(v) for k, v in (evaluation.get("counts") or {}).items() if isinstance(v, int)}
    return ModelEvaluation(info, str(evaluation.get("split", "temporal")), metrics, calibration, counts)
