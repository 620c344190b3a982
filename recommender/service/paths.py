"""RecommendPath and batch planning: gather the learner's state, call the pure planner."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from recommender.domain.catalog import Catalog
from recommender.domain.ids import is_language_tag, is_locale
from recommender.domain.learner import Learner, validate_learner
from recommender.domain.path import LearningPath
from recommender.domain.profile import SkillState
from recommender.errors import FieldViolation, InvalidInput, LubanError, NotFound
from recommender.kt.bkt import SECONDS_PER_DAY, BKTModel, mastery_now
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import LearnerState, ModelOpinion, PlanOptions, plan_path
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock
from recommender.service.learners import LearnerService
from recommender.storage.store import Store

DEFAULT_STEPS = 10
MAX_STEPS = 50
MAX_EXCLUSIONS = 1000


def model_key(tenant: str, learner_id: str) -> str:
    """How the hybrid model names a learner (tenants may reuse ids)."""
    return f"{tenant}/{learner_id}"


@dataclass(frozen=True)
class PathRequest:
    learner_id: str
    max_steps: int = 0
    target_role_id: str = ""
    languages: tuple[str, ...] = ()
    time_budget_minutes: int = 0
    exclude_module_ids: tuple[str, ...] = ()
    locale: str = ""


# The active hybrid model's P(success) per module for learners (model keys, learners, mastery of
# practiced skills) -> ((n_learners, n_modules), version), or None when no model is active.
Predictor = Callable[
    [Catalog, Sequence[str], Sequence[Learner], Sequence[Mapping[str, float]]], tuple[np.ndarray, str] | None
]


class PathService:
    def __init__(
        self,
        store: Store,
        catalogs: CatalogService,
        bkt: Callable[[], BKTModel],
        clock: Clock,
        mastery_threshold: float,
        predictor: Predictor | None = None,
    ) -> None:
        self.store = store
        self.catalogs = catalogs
        self._bkt = bkt
        self._clock = clock
        self._threshold = mastery_threshold
        self._predictor = predictor
        self._lock = threading.Lock()
        self._cache: tuple[int, BKTModel, CatalogArrays, SkillParamArrays] | None = None

    def arrays(self, catalog: Catalog) -> tuple[CatalogArrays, SkillParamArrays]:
        """Planner arrays for this catalog revision and BKT model, built once."""
        model = self._bkt()
        cached = self._cache
        if cached is not None and cached[0] == catalog.revision and cached[1] is model:
            return cached[2], cached[3]
        with self._lock:
            built = (catalog.revision, model, CatalogArrays.build(catalog), SkillParamArrays.build(catalog, model))
            self._cache = built
        return built[2], built[3]

    def recommend(self, tenant: str, request: PathRequest) -> LearningPath:
        catalog = self.catalogs.require()
        learner = self.store.get_learner(tenant, request.learner_id)
        if learner is None:
            raise NotFound("learner", request.learner_id, field="learner_id")
        options = self.options_for(catalog, learner, request)
        found = self.store.get_skill_states(tenant, learner.learner_id)
        states = found[0] if found else []
        return self.plan(catalog, model_key(tenant, learner.learner_id), learner, states, options)

    def plan(
        self, catalog: Catalog, key: str, learner: Learner, states: Sequence[SkillState], options: PlanOptions
    ) -> LearningPath:
        arrays, kt = self.arrays(catalog)
        now = self._clock()
        state = learner_state(catalog, learner, states, kt, self._bkt(), now)
        opinion = None
        if self._predictor is not None:
            practiced = {
                s.skill_id: float(state.mastery[catalog.skill_index[s.skill_id]])
                for s in states
                if s.skill_id in catalog.skill_index
            }
            predicted = self._predictor(catalog, [key], [learner], [practiced])
            if predicted is not None:
                opinion = ModelOpinion(success=predicted[0][0], version=predicted[1])
        return plan_path(arrays, kt, state, options, now, opinion)

    def options_for(self, catalog: Catalog, learner: Learner, request: PathRequest) -> PlanOptions:
        """Validate the request against the learner and catalog; defaults come from the learner."""
        problems: list[FieldViolation] = []
        steps = request.max_steps or DEFAULT_STEPS
        if not 1 <= steps <= MAX_STEPS:
            problems.append(FieldViolation("max_steps", f"must be in [1, {MAX_STEPS}] (0 means {DEFAULT_STEPS})"))
        if request.time_budget_minutes < 0:
            problems.append(FieldViolation("time_budget_minutes", "must be >= 0 (0 means no limit)"))
        languages = request.languages or learner.languages
        for i, lang in enumerate(request.languages):
            if not is_language_tag(lang):
                problems.append(FieldViolation(f"languages[{i}]", f"{lang[:40]!r} is not a BCP 47 tag"))
        if not languages:
            problems.append(FieldViolation("languages", "the learner has no languages; pass languages"))
        if request.locale and not is_locale(request.locale):
            problems.append(FieldViolation("locale", f"{request.locale[:40]!r} is not a locale such as 'zh-CN'"))
        if len(request.exclude_module_ids) > MAX_EXCLUSIONS:
            problems.append(FieldViolation("exclude_module_ids", f"at most {MAX_EXCLUSIONS} ids"))
        role_id = request.target_role_id or learner.target_role_id
        if not role_id:
            problems.append(FieldViolation("target_role_id", "the learner has no target role; pass target_role_id"))
        if problems:
            raise InvalidInput(problems)
        if role_id not in catalog.roles:
            raise NotFound("role", role_id, field="target_role_id")
        for i, module_id in enumerate(request.exclude_module_ids):
            if module_id not in catalog.modules:
                raise NotFound("module", module_id, field=f"exclude_module_ids[{i}]")
        return PlanOptions(
            target_role_id=role_id,
            languages=tuple(languages),
            max_steps=steps,
            time_budget_minutes=request.time_budget_minutes,
            exclude_module_ids=frozenset(request.exclude_module_ids),
            locale=request.locale or "en",
            mastery_threshold=self._threshold,
        )


def learner_state(
    catalog: Catalog,
    learner: Learner,
    states: Sequence[SkillState],
    kt: SkillParamArrays,
    model: BKTModel,
    now: datetime,
) -> LearnerState:
    """Per-skill arrays: mastery now (prior when never practiced), peak and days since practice."""
    mastery = kt.prior.copy()
    peak = np.zeros_like(mastery)
    days = np.full_like(mastery, math.nan)
    for s in states:
        i = catalog.skill_index.get(s.skill_id)
        if i is None:
            continue  # a skill removed from the catalog since
        mastery[i] = mastery_now(s, model.of(s.skill_id), now)
        peak[i] = s.mastery
        days[i] = max((now - s.last_practiced_at).total_seconds(), 0.0) / SECONDS_PER_DAY
    return LearnerState(learner=learner, mastery=mastery, peak=peak, days_since_practice=days)


@dataclass(frozen=True)
class CohortOutcome:
    """One learner's result in a batch: a path, or the error that stopped it."""

    index: int
    learner_id: str
    path: LearningPath | None = None
    error: LubanError | None = None


def plan_cohort(
    service: PathService,
    tenant: str,
    learners: Sequence[Learner],
    *,
    max_steps: int,
    locale: str,
    persist: bool,
    learner_service: LearnerService,
    keep_going: Callable[[], bool] = lambda: True,
) -> Iterator[CohortOutcome]:
    """Paths for many learners in input order; per-learner errors are outcomes, not failures.
    Learners already stored under the tenant are planned from their stored profiles."""
    catalog = service.catalogs.require()
    valid: dict[int, Learner] = {}
    errors: dict[int, LubanError] = {}
    for i, raw in enumerate(learners):
        try:
            valid[i] = validate_learner(raw, catalog, prefix=f"learners[{i}]")
        except LubanError as exc:
            errors[i] = exc
    if persist and valid:
        learner_service.upsert_many(tenant, list(valid.values()))
    states = service.store.get_skill_states_many(tenant, [x.learner_id for x in valid.values()])
    for i, raw in enumerate(learners):
        if not keep_going():
            return
        if i in errors:
            yield CohortOutcome(i, raw.learner_id, error=errors[i])
            continue
        learner = valid[i]
        try:
            options = service.options_for(catalog, learner, PathRequest(learner.learner_id, max_steps, locale=locale))
            key = model_key(tenant, learner.learner_id)
            path = service.plan(catalog, key, learner, states.get(learner.learner_id, []), options)
            yield CohortOutcome(i, learner.learner_id, path=path)
        except LubanError as exc:
            yield CohortOutcome(i, learner.learner_id, error=exc)
