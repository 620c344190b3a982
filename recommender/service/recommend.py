"""RecommendPath and batch planning: gather the learner's state, call the pure planner."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

import numpy as np

from recommender import __version__
from recommender.domain.catalog import Catalog
from recommender.domain.ids import is_language_tag, is_locale, require_id
from recommender.domain.learner import Learner, validate_learner
from recommender.domain.path import LearningPath
from recommender.domain.profile import NO_STUDIES, LearnerRecord, SkillState
from recommender.errors import FieldViolation, InvalidInput, LubanError, NotFound, PreconditionFailed
from recommender.kt.bkt import SECONDS_PER_DAY, BKTModel, mastery_now
from recommender.ml.model import HybridModel
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import (
    FloatArray,
    IntArray,
    LearnerState,
    ModelOpinion,
    PlanInput,
    PlanOptions,
    plan_paths,
    warm_kernel,
)
from recommender.planner.reasons import resolve_locale
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock
from recommender.service.learners import LearnerService
from recommender.storage import deadline
from recommender.storage.store import DEFAULT_TENANT, LearnerRead, SharedPath, SharedPathKey, Store

log = logging.getLogger(__name__)
T = TypeVar("T")

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


MEMO_LIMIT = 20_000
OPTIONS_KEPT = 10_000


@dataclass(frozen=True)
class PlanItem:
    """One learner to plan: `key` names them to the model (model_key)."""

    key: str
    learner: Learner
    states: Sequence[SkillState]
    options: PlanOptions
    studied: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Planner:
    """Everything planning needs, with no I/O: picklable, so batch jobs ship it to workers once.

    Planning is a pure function of (learner features, skill states, options, time), so paths of
    learners with no history whom the model does not know by identity (a new cohort: many share
    country, languages, role and HSK level) are memoized by those inputs: planned once, copied with
    the learner id. The memo is bounded and is never pickled."""

    catalog: Catalog
    arrays: CatalogArrays
    kt: SkillParamArrays
    bkt: BKTModel
    model: HybridModel | None
    mastery_confidence: float
    check_after_studies: int
    max_module_attempts: int
    kernel: bool = True  # the compiled step loop (plan_paths)
    _memo: PathMemo = field(default_factory=lambda: PathMemo(MEMO_LIMIT), compare=False, repr=False)
    # options_for's answers by what they depend on (learners of a cohort share a handful)
    _options: dict[tuple[object, ...], PlanOptions] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_memo", "_no_states", "_options")}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state, _memo=PathMemo(MEMO_LIMIT), _options={})

    @classmethod
    def build(
        cls,
        catalog: Catalog,
        model: HybridModel | None,
        mastery_confidence: float,
        check_after_studies: int,
        max_module_attempts: int,
        kernel: bool = True,
    ) -> Planner:
        bkt = model.bkt if model is not None else DEFAULT_BKT
        return cls(
            catalog,
            CatalogArrays.build(catalog),
            SkillParamArrays.build(catalog, bkt),
            bkt,
            model,
            mastery_confidence,
            check_after_studies,
            max_module_attempts,
            kernel,
        )

    @property
    def model_version(self) -> str:
        return self.model.version if self.model is not None else ""

    def plan(
        self,
        key: str,
        learner: Learner,
        states: Sequence[SkillState],
        options: PlanOptions,
        now: datetime,
        studied: Mapping[str, int] = NO_STUDIES,
    ) -> LearningPath:
        path = self.plan_many([PlanItem(key, learner, states, options, studied)], now)[0]
        if isinstance(path, PreconditionFailed):
            raise path
        return path

    def plan_many(self, items: Sequence[PlanItem], now: datetime) -> list[LearningPath | PreconditionFailed]:
        """Paths in input order (or the PreconditionFailed naming what blocks one). Memo hits are
        copied; the rest are planned together (plan_paths), each distinct input once, with the
        model's opinions of all of them computed in one call."""
        results: dict[int, LearningPath | PreconditionFailed] = {}
        pending: dict[tuple[object, ...], list[int]] = {}  # ("memo", key) or ("own", i) -> items sharing it
        for i, item in enumerate(items):
            memo_key = self._memo_key(item) if not item.studied else None
            if memo_key is not None:
                hit = self._memo.get(memo_key)
                if hit is not None:
                    results[i] = replace(hit, learner_id=item.learner.learner_id, generated_at=now)
                    continue
            pending.setdefault(("memo", memo_key) if memo_key is not None else ("own", i), []).append(i)
        firsts = [items[members[0]] for members in pending.values()]
        states = [
            learner_state(self.catalog, x.learner, x.states, self.kt, self.bkt, now, x.studied)
            if x.states
            else self._new_learner_state(x.learner, x.studied)
            for x in firsts
        ]
        inputs = [
            PlanInput(state, x.options, opinion)
            for x, state, opinion in zip(firsts, states, self._opinions(firsts, states), strict=True)
        ]
        planned = plan_paths(self.arrays, self.kt, inputs, now, kernel=self.kernel)
        for ((kind, key), members), path in zip(pending.items(), planned, strict=True):
            if isinstance(path, PreconditionFailed):
                for i in members:
                    results[i] = path
                continue
            if kind == "memo":
                self._memo.put(cast(tuple[object, ...], key), path)
            for i in members:
                results[i] = path if i == members[0] else replace(path, learner_id=items[i].learner.learner_id)
        return [results[i] for i in range(len(items))]

    def _new_learner_state(self, learner: Learner, studied: Mapping[str, int]) -> LearnerState:
        """learner_state() of a learner with no skill state: every such learner shares one set of
        arrays, read-only (planning copies what it changes)."""
        mastery, peak, days, studies = self._no_states
        return LearnerState(learner, mastery, peak, days, studied, studies)

    @functools.cached_property
    def _no_states(self) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
        """mastery, peak, days since practice, studies since check of a learner with no state."""
        blank = learner_state(self.catalog, Learner(""), (), self.kt, self.bkt, datetime.min)
        assert blank.studies_since_check is not None
        arrays = (blank.mastery, blank.peak, blank.days_since_practice, blank.studies_since_check)
        for a in arrays:
            a.setflags(write=False)
        return arrays

    def _memo_key(self, item: PlanItem) -> tuple[object, ...] | None:
        """The inputs a history-less path depends on (time only stamps it), or None when the
        learner has a history or an identity in the model: the model's view of the learner's
        features, the HSK level and the options (role and languages among them). Columns the model
        never saw (a name, an e-mail) do not split the memo."""
        if item.states or (self.model is not None and self.model.knows_learner(item.key)):
            return None
        seen_by_model = self.model.cold_signature(item.learner) if self.model is not None else None
        return (seen_by_model, item.learner.chinese_level, item.options)

    def _opinions(self, items: Sequence[PlanItem], states: Sequence[LearnerState]) -> list[ModelOpinion | None]:
        """The active model's predicted success per module for each learner, if a model is active."""
        if self.model is None:
            return [None] * len(items)
        index = self.catalog.skill_index
        practiced = [
            {s.skill_id: float(state.mastery[index[s.skill_id]]) for s in x.states if s.skill_id in index}
            for x, state in zip(items, states, strict=True)
        ]
        vectors = self.model.success_vectors([s.learner for s in states], [x.key for x in items], practiced)
        success = self.model.success_by_row(vectors, self.catalog)
        blend = self.model.blend
        return [ModelOpinion(row, self.model.version, blend.knowledge, blend.model, blend.intercept) for row in success]

    def options_for(self, learner: Learner, request: PathRequest) -> PlanOptions:
        """Validate the request against the learner and catalog; defaults come from the learner (the
        locale of reason texts too: the request's, else the learner's first language, else en).
        Valid options are kept by everything they depend on (not the learner's id)."""
        key = (request.max_steps, request.target_role_id, request.languages, request.time_budget_minutes,
               request.exclude_module_ids, request.locale, learner.languages, learner.target_role_id)  # fmt: skip
        found = self._options.get(key)
        if found is None:
            found = self._options_for(learner, request)
            if len(self._options) >= OPTIONS_KEPT:
                self._options.clear()
            self._options[key] = found
        return found

    def _options_for(self, learner: Learner, request: PathRequest) -> PlanOptions:
        catalog = self.catalog
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
        if request.locale and not is_locale(request.locale):
            problems.append(FieldViolation("locale", f"{request.locale[:40]!r} is not a locale such as 'zh-CN'"))
        if len(request.exclude_module_ids) > MAX_EXCLUSIONS:
            problems.append(FieldViolation("exclude_module_ids", f"at most {MAX_EXCLUSIONS} ids"))
        role_id = request.target_role_id or learner.target_role_id
        if problems:
            raise InvalidInput(problems)
        # the request is well formed; what is missing is the learner's own state (FAILED_PRECONDITION)
        subject = f"learners/{learner.learner_id}"
        if not languages:
            raise PreconditionFailed(
                f"learner {learner.learner_id!r} has no languages; pass languages, or set them with UpsertLearner",
                subject=subject,
                type="LANGUAGES",
            )
        if not role_id:
            raise PreconditionFailed(
                f"learner {learner.learner_id!r} has no target role yet; pass target_role_id, "
                "or set it with UpsertLearner",
                subject=subject,
                type="TARGET_ROLE",
            )
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
            locale=resolve_locale(request.locale, learner.languages),
            mastery_confidence=self.mastery_confidence,
            check_after_studies=self.check_after_studies,
            max_module_attempts=self.max_module_attempts,
        )


DEFAULT_BKT = BKTModel()


class PathMemo:
    """A bounded, thread-safe LRU of planned paths (the gRPC server plans on many threads)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._paths: OrderedDict[tuple[object, ...], LearningPath] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> LearningPath | None:
        with self._lock:
            path = self._paths.get(key)
            if path is not None:
                self._paths.move_to_end(key)
            return path

    def put(self, key: tuple[object, ...], path: LearningPath) -> None:
        with self._lock:
            self._paths[key] = path
            self._paths.move_to_end(key)
            while len(self._paths) > self._limit:
                self._paths.popitem(last=False)

    def __len__(self) -> int:
        return len(self._paths)


class PathForm(Generic[T]):
    """How a caller is served a path: as planned (the domain object), or as a serving layer's
    message, rendered once per planned path and kept in the cache in that form. A form that can
    `dump` and `load` itself (`shared`) is also stored for every process (Store.put_shared_paths)."""

    name = "path"
    shared = False

    def render(self, path: LearningPath) -> T:
        raise NotImplementedError

    def dump(self, rendered: T) -> bytes:
        raise NotImplementedError

    def load(self, data: bytes) -> T:
        raise NotImplementedError


class _AsPlanned(PathForm[LearningPath]):
    def render(self, path: LearningPath) -> LearningPath:
        return path


AS_PLANNED = _AsPlanned()


@dataclass(frozen=True)
class CachedPath:
    """A path in the form it is served, and what it was planned from: the learner's evidence
    version (as the store read it with the states planned on) and the planner (one catalog
    revision, one model), held weakly so that entries planned before a swap do not keep old
    models alive."""

    rendered: object
    version: object
    planner: weakref.ref[Planner]
    generated_at: datetime
    form: PathForm[Any]

    def serves(self, planner: Planner | None, now: datetime, max_age: timedelta) -> bool:
        """Planned by this planner, and young enough (the store's version is checked after)."""
        return self.planner() is planner and now - self.generated_at <= max_age


CacheKey = tuple[str, PathRequest, str]  # tenant, request, form


class PathCache:
    """The last path per (tenant, request, form) in this process, for the page-view pattern (a
    path asked for on every page a learner opens, mostly with nothing new since). An entry is
    served only while the store's evidence version of the learner, read in the call's one
    transaction, is the one it was planned from, the planner (catalog revision, active model) is
    the same, and it is younger than `max_age` (forgetting lowers masteries with time alone).
    Bounded LRU; thread-safe. Other processes' writes reach it through the store's version:
    nothing needs to be told. It also knows which requests a learner's paths were asked with, so
    they can be planned again ahead of the next page view (PlanAhead)."""

    def __init__(self, limit: int, max_age: timedelta) -> None:
        self._limit = limit
        self.max_age = max_age
        self._paths: OrderedDict[CacheKey, CachedPath] = OrderedDict()
        self._by_learner: dict[tuple[str, str], set[CacheKey]] = {}
        self._unserved: set[CacheKey] = set()  # planned ahead, and not asked for since
        self._lock = threading.Lock()

    def get(self, key: CacheKey, *, serving: bool = True) -> CachedPath | None:
        """The entry for `key`; `serving`: asked for by a caller (not by PlanAhead)."""
        with self._lock:
            found = self._paths.get(key)
            if found is not None:
                self._paths.move_to_end(key)
            if serving:
                self._unserved.discard(key)
            return found

    def planned_ahead(self, key: CacheKey) -> None:
        with self._lock:
            if key in self._paths:
                self._unserved.add(key)

    def put(self, key: CacheKey, entry: CachedPath) -> CachedPath:
        """Keep `entry`, unless the one kept is from the same evidence and planner and young
        enough (two threads planned it at once): then that one stays, so a path once served is served again. Returns
        the entry kept."""
        if self._limit <= 0:
            return entry
        with self._lock:
            kept = self._paths.get(key)
            if (
                kept is not None
                and kept.version == entry.version
                and kept.serves(entry.planner(), entry.generated_at, self.max_age)
            ):
                self._paths.move_to_end(key)
                return kept
            self._paths[key] = entry
            self._paths.move_to_end(key)
            self._by_learner.setdefault((key[0], key[1].learner_id), set()).add(key)
            while len(self._paths) > self._limit:
                gone, _ = self._paths.popitem(last=False)
                self._unserved.discard(gone)
                keys = self._by_learner.get((gone[0], gone[1].learner_id))
                if keys is not None:
                    keys.discard(gone)
                    if not keys:
                        del self._by_learner[(gone[0], gone[1].learner_id)]
            return entry

    def requests_of(self, tenant: str, learner_id: str) -> list[tuple[PathRequest, PathForm[Any]]]:
        """The requests (and forms) this process has a path of the learner for, except paths
        planned ahead and not asked for since: a path is planned ahead once per page view, not
        after every result of a learner who is not looking."""
        with self._lock:
            keys = [k for k in self._by_learner.get((tenant, learner_id), ()) if k not in self._unserved]
            return [(k[1], self._paths[k].form) for k in keys]

    def __len__(self) -> int:
        return len(self._paths)


NO_PATH_CACHE = PathCache(0, timedelta(0))
FLIGHT_WAIT_SECONDS = 5.0  # longest a call waits for another thread planning the same path


def request_key(request: PathRequest, form: PathForm[Any]) -> str:
    """A digest naming a request's path in a form, the same in every process."""
    return hashlib.blake2b(repr((form.name, request)).encode(), digest_size=16).hexdigest()


class PathService:
    def __init__(
        self,
        store: Store,
        catalogs: CatalogService,
        model: Callable[[str], HybridModel | None],
        clock: Clock,
        mastery_confidence: float,
        check_after_studies: int,
        max_module_attempts: int,
        planning_threads: int = 1,
        planner_kernel: bool = True,
        cache: PathCache = NO_PATH_CACHE,
        *,
        share: bool = False,
        plan_ahead: bool = False,
        poll_seconds: float = 0.0,
    ) -> None:
        self.cache = cache
        self.store = store
        self.catalogs = catalogs
        self._model = model
        self._clock = clock
        self._confidence = mastery_confidence
        self._check_after = check_after_studies
        self._max_attempts = max_module_attempts
        self._kernel = planner_kernel
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[int, HybridModel | None, Planner]] = {}  # by tenant
        self._planning_slots = PlanningSlots(planning_threads)
        self._flights: dict[CacheKey, threading.Event] = {}  # paths being planned, by cache key
        self._share = share and cache is not NO_PATH_CACHE
        self._plan_ahead = plan_ahead and cache is not NO_PATH_CACHE
        self.ahead = PlanAhead(self, poll_seconds if self._share and self._plan_ahead else 0.0)

    def planner(self, catalog: Catalog | None = None, tenant: str = DEFAULT_TENANT) -> Planner:
        """The planner for the current catalog revision and the tenant's active model, built once
        per pair; a request reads the model once, so a model swap never splits one request."""
        catalog = catalog or self.catalogs.require(tenant)
        model = self._model(tenant)
        cached = self._cached.get(tenant)
        if cached is not None and cached[0] == catalog.revision and cached[1] is model:
            return cached[2]
        with self._lock:
            planner = Planner.build(
                catalog, model, self._confidence, self._check_after, self._max_attempts, self._kernel
            )
            self._cached[tenant] = (catalog.revision, model, planner)
        return planner

    def planner_key(self, planner: Planner) -> str:
        """What a path was planned by, the same in every process: the catalog revision, the
        model version (an erasure's rewrite of a version changes only the erased learner's
        paths, and erases those) and the planning settings; the code's version too."""
        return (
            f"{__version__}/{planner.catalog.revision}/{planner.model_version}/"
            f"{self._confidence}/{self._check_after}/{self._max_attempts}"
        )

    def recommend(self, tenant: str, request: PathRequest) -> LearningPath:
        """The learner's path; the cached one (PathCache) when nothing it depends on changed."""
        return self.serve(tenant, request, AS_PLANNED)

    def serve(self, tenant: str, request: PathRequest, form: PathForm[T]) -> T:
        """The learner's path in `form`: this process's cached one when nothing it depends on
        changed; else the one another process stored (a shared form) when planned from the same
        evidence by the same planner; else planned now. A call that finds another thread planning
        the same path waits for it rather than planning it twice."""
        require_id("learner_id", request.learner_id)
        self.ahead.watch()
        key: CacheKey = (tenant, request, form.name)
        waited = False
        while True:
            planner, now, cached, shared, read = self._look(tenant, request, form, key, serving=True)
            if read is None:
                raise NotFound("learner", request.learner_id, field="learner_id")
            if read.record is None and read.shared is None and cached is not None:
                return cast(T, cached.rendered)
            self.ahead.hurry()
            if read.shared is not None:
                return cast(T, self._adopt(key, form, planner, read).rendered)
            assert read.record is not None  # the store returns the record unless the version was known
            with self._lock:
                running = self._flights.get(key)
                mine = None
                if running is None:
                    mine = self._flights[key] = threading.Event()
            if mine is not None:
                # another thread may have planned it from this very version since the read
                latest = self.cache.get(key)
                if (
                    latest is not None
                    and latest.version == read.version
                    and latest.serves(planner, now, self.cache.max_age)
                ):
                    with self._lock:
                        del self._flights[key]
                    mine.set()
                    return cast(T, latest.rendered)
            if running is not None and not waited:
                left = deadline.remaining()
                running.wait(FLIGHT_WAIT_SECONDS if left is None else max(min(left, FLIGHT_WAIT_SECONDS), 0.0))
                waited = True
                continue  # read again: what the other thread planned may serve this call
            try:
                return self._plan(tenant, request, form, planner, read.version, read.record, key, shared)
            finally:
                if mine is not None:
                    with self._lock:
                        del self._flights[key]
                    mine.set()

    def _plan(
        self,
        tenant: str,
        request: PathRequest,
        form: PathForm[T],
        planner: Planner,
        version: object,
        record: LearnerRecord,
        key: CacheKey,
        shared: SharedPathKey | None,
    ) -> T:
        learner = record.learner
        options = planner.options_for(learner, request)
        with self._planning_slots.take(urgent=True):
            planned_at = self._clock()
            path = planner.plan(
                model_key(tenant, learner.learner_id), learner, record.states, options, planned_at,
                record.studied_module_ids,
            )  # fmt: skip
        rendered = form.render(path)
        planned = CachedPath(rendered, version, weakref.ref(planner), planned_at, form)
        kept = self.cache.put(key, planned)
        if kept is not planned:  # planned at once by another thread, which served it already
            return cast(T, kept.rendered)
        if shared is not None:
            self.ahead.share(tenant, request.learner_id, shared, version, planned_at, rendered, form)
        return rendered

    def _look(
        self, tenant: str, request: PathRequest, form: PathForm[Any], key: CacheKey, *, serving: bool
    ) -> tuple[Planner, datetime, CachedPath | None, SharedPathKey | None, LearnerRead | None]:
        """The planner, now, this process's cached path if it still serves, the stored path's key
        (a shared form) and the store's answer: the evidence version, and the record unless the
        cached version or a stored path planned from it answers the call."""
        planner = self.planner(tenant=tenant)
        now = self._clock()
        cached = self.cache.get(key, serving=serving)
        if cached is not None and not cached.serves(planner, now, self.cache.max_age):
            cached = None
        shared = None
        if self._share and form.shared:
            shared = SharedPathKey(request_key(request, form), self.planner_key(planner))
        read = self.store.get_learner_record_if_changed(
            tenant, request.learner_id, cached.version if cached is not None else None, shared,
            now - self.cache.max_age,
        )  # fmt: skip
        return planner, now, cached, shared, read

    def _adopt(self, key: CacheKey, form: PathForm[Any], planner: Planner, read: LearnerRead) -> CachedPath:
        """The path another process stored for this evidence, cached here as if planned here."""
        assert read.shared is not None
        loaded = CachedPath(form.load(read.shared.body), read.version, weakref.ref(planner),
                            read.shared.generated_at, form)  # fmt: skip
        return self.cache.put(key, loaded)

    def plan_ahead(self, wanted: Sequence[tuple[str, PathRequest, PathForm[Any]]]) -> None:
        """Plan the paths `wanted` that neither this process's cache nor the store (planned by
        another process) has for the learner's current evidence, together (Planner.plan_many:
        one batch costs less than planning each alone, and gives the same paths); each is then
        cached and shared as if a call had planned it. Paths being planned by a call are left to
        it; learners erased meanwhile, or whose request no longer validates, are skipped."""
        todo: list[tuple[CacheKey, PathForm[Any], Planner, LearnerRead, PlanItem, SharedPathKey | None]] = []
        mine: list[tuple[CacheKey, threading.Event]] = []
        try:
            for tenant, request, form in wanted:
                key: CacheKey = (tenant, request, form.name)
                planner, _, _, shared, read = self._look(tenant, request, form, key, serving=False)
                if read is None or read.record is None:
                    if read is not None and read.shared is not None:
                        self._adopt(key, form, planner, read)
                        self.cache.planned_ahead(key)
                    continue
                with self._lock:
                    if key in self._flights:
                        continue
                    event = self._flights[key] = threading.Event()
                mine.append((key, event))
                record = read.record
                try:
                    options = planner.options_for(record.learner, request)
                except LubanError:
                    continue
                item = PlanItem(model_key(tenant, request.learner_id), record.learner, record.states, options,
                                record.studied_module_ids)  # fmt: skip
                todo.append((key, form, planner, read, item, shared))
            by_planner: dict[int, list[int]] = {}
            for i, entry in enumerate(todo):
                by_planner.setdefault(id(entry[2]), []).append(i)
            for members in by_planner.values():
                planner = todo[members[0]][2]
                with self._planning_slots.take(urgent=False):
                    planned_at = self._clock()
                    paths = planner.plan_many([todo[i][4] for i in members], planned_at)
                for i, path in zip(members, paths, strict=True):
                    if isinstance(path, PreconditionFailed):
                        continue
                    key, form, _, read, item, shared = todo[i]
                    rendered = form.render(path)
                    planned = CachedPath(rendered, read.version, weakref.ref(planner), planned_at, form)
                    kept = self.cache.put(key, planned)
                    self.cache.planned_ahead(key)
                    if kept is planned and shared is not None:
                        self.ahead.share(key[0], item.learner.learner_id, shared, read.version, planned_at, rendered,
                                         form)  # fmt: skip
        finally:
            with self._lock:
                for key, _ in mine:
                    del self._flights[key]
            for _, event in mine:
                event.set()

    def learner_changed(self, tenant: str, learner_id: str) -> None:
        """A new result for the learner: plan the paths this process served them again, off the
        caller's thread, so the next page view (here, or in another process through the store)
        finds its path planned."""
        if self._plan_ahead:
            self.ahead.learner_changed(tenant, learner_id)

    def close(self) -> None:
        self.ahead.close()

    def now(self) -> datetime:
        return self._clock()

    def warm(self) -> None:
        """Load what the first path would otherwise wait for: the compiled planner (when in use)."""
        if self._kernel:
            warm_kernel()


# a path to store for the other processes: its key, evidence version digest, when planned, itself
_ToShare = tuple[SharedPathKey, object, datetime, object, PathForm[Any]]
AHEAD_LIMIT = 10_000
AHEAD_BATCH = 16  # paths planned ahead together (Planner.plan_many): a caller may wait for the batch
SHARE_EVERY_SECONDS = 0.01  # while planning ahead, paths planned are stored at least this often
# results found by a poll arriving faster than this are taken for a bulk import's (RecordAssessments,
# `recommender import`), whose learners are not planned ahead, as the process that writes them does
# not plan them either: single results, one per page view, come far slower than imports write
BULK_EVENTS_PER_SECOND = 5000
BULK_WINDOW_SECONDS = 0.05
POLL_IDLE_SECONDS = 0.1  # the longest period of polling for other processes' results (PlanAhead.hurry)


class PlanningSlots:
    """How many threads plan at once (planning is CPU-bound: a few threads, not every handler
    thread), callers before PlanAhead: a page view waiting to be planned goes first. A slot given
    back is handed to the next waiter directly (callers first, then PlanAhead, each in arrival
    order): one thread is woken, not every waiting one, whose wake-ups would otherwise compete for
    the interpreter with the planning they wait for."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._lock = threading.Lock()
        self._urgent: deque[threading.Lock] = deque()  # callers waiting, each on a lock held for it
        self._later: deque[threading.Lock] = deque()  # PlanAhead waiting

    @contextmanager
    def take(self, *, urgent: bool) -> Iterator[None]:
        with self._lock:
            if self._free > 0 and (urgent or not self._urgent):
                self._free -= 1
                waiter = None
            else:
                waiter = threading.Lock()
                waiter.acquire()
                (self._urgent if urgent else self._later).append(waiter)
        if waiter is not None:
            waiter.acquire()  # released by the thread that handed this one its slot
        try:
            yield
        finally:
            with self._lock:
                queue = self._urgent or self._later
                if queue:
                    queue.popleft().release()
                else:
                    self._free += 1


class PlanAhead:
    """One background thread per process, started on first use: plans again the paths of
    learners with a new result (PathService.learner_changed, or, every `poll_seconds` when
    several processes serve, Store.results_since: results another process recorded), and stores
    planned paths for the other processes (Store.put_shared_paths), in one transaction at least
    every SHARE_EVERY_SECONDS. Both are an
    optimisation only: what is over AHEAD_LIMIT, or fails, is left to the next read to plan."""

    def __init__(self, service: PathService, poll_seconds: float = 0.0) -> None:
        self._service = service
        self._poll_seconds = poll_seconds
        self._seen: int | None = None  # the last event seq polled
        self._polled_at = 0.0  # when (time.monotonic)
        self._told: set[tuple[str, str]] = set()  # learners told of here since the last poll
        self._learners: dict[tuple[str, str], None] = {}  # an ordered set: a burst plans once
        self._shares: dict[tuple[str, str, str], _ToShare] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False
        # polling runs at poll_seconds while results come in (found by polling, told, or hinted by
        # a call finding a path out of date), slowing down to POLL_IDLE_SECONDS while none do: an
        # idle server polls a few times a second, not hundreds
        self._interval = poll_seconds
        self._hurried = False

    def hurry(self) -> None:
        """A call found its learner's evidence changed: results are coming in, so poll at the set
        period again (at once, if polling had slowed down)."""
        if self._interval > self._poll_seconds:
            with self._wake:
                self._interval = self._poll_seconds
                self._hurried = True
                self._start()

    def learner_changed(self, tenant: str, learner_id: str) -> None:
        if not self._service.cache.requests_of(tenant, learner_id):
            return  # no page of theirs was served here lately
        with self._wake:
            if len(self._learners) < AHEAD_LIMIT:
                self._learners[(tenant, learner_id)] = None
                self._told.add((tenant, learner_id))
                self._start()

    def share(
        self, tenant: str, learner_id: str, key: SharedPathKey, version: object, planned_at: datetime,
        rendered: object, form: PathForm[Any],
    ) -> None:  # fmt: skip
        with self._wake:
            if len(self._shares) < AHEAD_LIMIT:
                self._shares[(tenant, learner_id, key.request_key)] = (key, version, planned_at, rendered, form)
                self._start()

    def watch(self) -> None:
        """When polling, start looking for the other processes' results now that a path is asked
        for here, from where the events end now (a process that planned nothing itself, serving
        the paths the others stored, would otherwise miss the next burst)."""
        if self._poll_seconds and self._thread is None:
            with self._wake:
                if self._thread is None and self._seen is None:
                    self.poll()  # notes where the events end
                self._start()

    def _start(self) -> None:
        """Under self._wake."""
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="plan-ahead", daemon=True)
            self._thread.start()
        self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._busy = False
                self._wake.notify_all()
                woken = self._wake.wait_for(
                    lambda: bool(self._learners or self._shares or self._closed or self._hurried),
                    self._interval or None,
                )
                self._hurried = False
                if self._closed:
                    return
                self._busy = True
                learners, self._learners = list(self._learners), {}
                told, self._told = self._told, set()
            if self._poll_seconds:
                polled = self.poll(skip=told.union(learners))
                learners += polled
                if woken or polled:
                    self._interval = self._poll_seconds
                else:
                    self._interval = min(self._interval * 2, max(POLL_IDLE_SECONDS, self._poll_seconds))
            stored = time.monotonic()
            wanted = [(tenant, request, form) for tenant, learner_id in learners
                      for request, form in self._service.cache.requests_of(tenant, learner_id)]  # fmt: skip
            for start in range(0, len(wanted), AHEAD_BATCH):
                if self._closed:
                    return
                if time.monotonic() - stored >= SHARE_EVERY_SECONDS:  # other processes wait for these
                    self._store_shares()
                    stored = time.monotonic()
                try:
                    self._service.plan_ahead(wanted[start : start + AHEAD_BATCH])
                except LubanError as exc:  # the store is down: the next reads say so
                    log.debug("planning ahead failed: %s", exc)
                except Exception:
                    log.exception("planning ahead failed")
            self._store_shares()

    def poll(self, skip: Collection[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """Learners with results recorded since the last poll, through any process, whose paths
        this process served (except `skip`), starting at a random one of them: processes that
        poll the same results work from different ends and skip what another stored meanwhile."""
        seen, polled_at = self._seen, self._polled_at
        try:
            self._seen, found = self._service.store.results_since(seen, AHEAD_LIMIT)
        except LubanError as exc:
            log.debug("polling for new results failed: %s", exc)
            return []
        self._polled_at = time.monotonic()
        window = max(self._polled_at - polled_at, BULK_WINDOW_SECONDS)  # a group commit's results come at once
        if seen is not None and self._seen - seen > BULK_EVENTS_PER_SECOND * window:
            return []  # an import's results (page views' come slower): planning them would cost the import
        mine = [x for x in found if x not in skip and self._service.cache.requests_of(*x)]
        if not mine:
            return []
        start = random.randrange(len(mine))
        return mine[start:] + mine[:start]

    def _store_shares(self) -> None:
        with self._wake:
            shares, self._shares = self._shares, {}
        by_tenant: dict[str, list[SharedPath]] = {}
        for (tenant, learner_id, _), (key, version, planned_at, rendered, form) in shares.items():
            by_tenant.setdefault(tenant, []).append(
                SharedPath(learner_id, key, version, planned_at, form.dump(rendered))
            )
        for tenant, paths in by_tenant.items():
            try:
                self._service.store.put_shared_paths(tenant, paths)
            except LubanError as exc:
                log.warning("storing %d planned paths for other processes failed: %s", len(paths), exc)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Until everything asked of the thread so far is done (tests, and a drain); False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not (self._busy or self._learners or self._shares), timeout)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)


def learner_state(
    catalog: Catalog,
    learner: Learner,
    states: Sequence[SkillState],
    kt: SkillParamArrays,
    model: BKTModel,
    now: datetime,
    studied: Mapping[str, int] = NO_STUDIES,
) -> LearnerState:
    """Per-skill arrays: mastery now (prior when never practiced), peak, days since practice and
    studies since the last check."""
    mastery = kt.prior.copy()
    peak = np.zeros_like(mastery)
    days = np.full_like(mastery, math.nan)
    studies = np.zeros(len(mastery), dtype=np.int64)
    for s in states:
        i = catalog.skill_index.get(s.skill_id)
        if i is None:
            continue  # a skill removed from the catalog since
        mastery[i] = mastery_now(s, model.of(s.skill_id), now)
        peak[i] = s.mastery
        days[i] = max((now - s.last_practiced_at).total_seconds(), 0.0) / SECONDS_PER_DAY
        studies[i] = s.studies_since_check
    return LearnerState(learner, mastery, peak, days, studied, studies)


@dataclass(frozen=True)
class CohortOutcome:
    """One learner's result in a batch: a path, or the error that stopped it."""

    index: int
    learner_id: str
    path: LearningPath | None = None
    error: LubanError | None = None


# GeneratePaths plans this many learners together before streaming them: enough to share numpy's
# per-call cost, few enough that the first path goes out within a few milliseconds
STREAM_BATCH = 32


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
    planner = service.planner(tenant=tenant)
    catalog = planner.catalog
    now = service.now()
    valid: dict[int, Learner] = {}
    errors: dict[int, LubanError] = {}
    for i, raw in enumerate(learners):
        try:
            valid[i] = validate_learner(raw, catalog, prefix=f"learners[{i}]")
        except LubanError as exc:
            errors[i] = exc
    if persist and valid:
        learner_service.upsert_many(tenant, list(valid.values()))
    # learners already stored are planned from their states and studied modules, like RecommendPath
    stored = service.store.get_learner_records(tenant, [x.learner_id for x in valid.values()])
    for start in range(0, len(learners), STREAM_BATCH):
        if not keep_going():
            return
        block = range(start, min(start + STREAM_BATCH, len(learners)))
        items: list[PlanItem] = []
        early: dict[int, LubanError] = {}
        for i in block:
            if i in errors:
                early[i] = errors[i]
                continue
            learner = valid[i]
            try:
                options = planner.options_for(learner, PathRequest(learner.learner_id, max_steps, locale=locale))
            except LubanError as exc:
                early[i] = exc
                continue
            key = model_key(tenant, learner.learner_id)
            record = stored.get(learner.learner_id)
            if record is None:
                items.append(PlanItem(key, learner, (), options))
            else:
                items.append(PlanItem(key, learner, record.states, options, record.studied_module_ids))
        planned = iter(planner.plan_many(items, now))
        for i in block:
            if not keep_going():
                return
            learner_id = learners[i].learner_id
            if i in early:
                yield CohortOutcome(i, learner_id, error=early[i])
                continue
            path = next(planned)
            if isinstance(path, PreconditionFailed):
                yield CohortOutcome(i, learner_id, error=path)
            else:
                yield CohortOutcome(i, learner_id, path=path)
