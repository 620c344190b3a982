"""Model registry and training jobs, per tenant.

Each tenant's active model is one reference, swapped atomically: a request reads it once and
finishes on the model it started with, so activation needs no downtime. Activations are recorded
in the store, so `rollback` and several server processes agree on which version serves.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recommender.datasets.formats import BadRow, read_events, read_learners
from recommender.domain.catalog import Catalog, build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.domain.ids import require_id
from recommender.domain.jobs import JOB_HEARTBEAT, JOB_STATES, TrainingJob
from recommender.domain.learner import Learner
from recommender.errors import InvalidInput, LubanError, ModelArtifactError, NotFound, PreconditionFailed
from recommender.kt.bkt import BKTModel
from recommender.ml.artifacts import (
    finite_metrics,
    load_model,
    owner_only_folder,
    read_meta,
    rewrite_model,
    save_model,
)
from recommender.ml.data import TrainingData, build_event_table
from recommender.ml.evaluate import Evaluation, evaluate, make_split, score_model
from recommender.ml.features import NO_FEATURES, FeatureSchema
from recommender.ml.model import HybridModel
from recommender.ml.train import TrainConfig, train_hybrid
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock
from recommender.service.recommend import model_key
from recommender.storage.store import DEFAULT_TENANT, LEGACY_TENANT, Store, erasure_subject

log = logging.getLogger("recommender.models")
COMPARE_ON = ("auc", "ndcg@10")
MIN_EVENTS = 10
PROGRESS_STEP = 0.01  # a job's progress is written to the store when it moves this much (or its message changes)
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ModelInfo:
    version: str
    created_at: datetime | None
    active: bool
    metrics: Mapping[str, float]
    data_fingerprint: str
    training_events: int


TENANTS_FOLDER = "tenants"  # models/tenants/<tenant>/<version>/: a tenant's own versions
RETIRED_FOLDER = "retired"  # models/retired/<version>/: older models that hold several tenants' learners
_TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_tenant_name(tenant: str) -> str:
    """A tenant's name names its model folder, so it is a plain path component."""
    if not _TENANT_NAME.match(tenant):
        raise InvalidInput.of("tenant", f"{tenant[:64]!r}: a tenant is 1-128 letters, digits, '.', '_' or '-'")
    return tenant


class ModelRegistry:
    """Each tenant's model versions, activations and served model. A version belongs to the tenant
    that trained it: another tenant cannot list, read or activate it (NOT_FOUND, as for a version
    that does not exist). There is no shared model: every model is trained on one tenant's data."""

    def __init__(self, store: Store, models_dir: Path, clock: Clock, refresh_seconds: float = 2.0) -> None:
        self._store = store
        self.models_dir = models_dir
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._active: dict[str, HybridModel | None] = {}
        self._checked: dict[str, tuple[float, tuple[str, int, int] | None]] = {}  # tenant -> (checked, mark)
        self._lock = threading.RLock()

    # serving --------------------------------------------------------------------------------
    def active(self, tenant: str = DEFAULT_TENANT) -> HybridModel | None:
        """The tenant's served model. Another process may activate a version, or rewrite the
        active one (an erasure): every `refresh_seconds` the latest activation and the active
        folder's identity are re-read, and the model reloaded when either changed."""
        checked = self._checked.get(tenant)
        if checked is not None and time.monotonic() - checked[0] < self._refresh_seconds:
            try:
                return self._active[tenant]
            except KeyError:
                pass
        return self.load_active(tenant)

    def _mark(self, version: str, tenant: str) -> tuple[str, int, int] | None:
        """What identifies the served artifact: the version and its folder's inode and mtime (a
        rewrite replaces the folder); None while the folder is missing (mid-rewrite)."""
        try:
            found = os.stat(self.folder(version, tenant))
        except (FileNotFoundError, InvalidInput):
            return None
        return version, found.st_ino, found.st_mtime_ns

    def bkt(self, tenant: str = DEFAULT_TENANT) -> BKTModel:
        model = self.active(tenant)
        return model.bkt if model is not None else _DEFAULT_BKT

    def serving(self) -> dict[str, str]:
        """tenant -> active version, for the tenants served so far."""
        return {t: m.version for t, m in sorted(self._active.items()) if m is not None}

    def load_active(self, tenant: str = DEFAULT_TENANT) -> HybridModel | None:
        """Serve the tenant's latest recorded activation, loaded again only when it (or its folder)
        changed since this process last looked."""
        started = time.monotonic()
        history = self._store.activation_history(tenant)
        version = history[-1][0] if history else ""
        mark = self._mark(version, tenant) if version else NO_MODEL_MARK
        with self._lock:
            previous = self._checked.get(tenant)
            if tenant in self._active and previous is not None and (mark is None or previous[1] == mark):
                if mark is not None:  # unchanged; mid-rewrite (None): keep serving, look again next call
                    self._checked[tenant] = (started, mark)
                return self._active[tenant]
        model: HybridModel | None = None
        if version:
            try:
                model = replace(load_model(self.folder(version, tenant)), version=version)
            except (ModelArtifactError, InvalidInput) as exc:
                log.error("active model %s of %s cannot be loaded, serving without a model: %s", version, tenant, exc)
        with self._lock:
            seen = self._checked.get(tenant)
            if seen is not None and seen[0] > started:  # an activation here meanwhile wins over this read
                return self._active.get(tenant)
            self._active[tenant] = model
            self._checked[tenant] = (started, mark)
            return model

    # registry -------------------------------------------------------------------------------
    def tenant_folder(self, tenant: str) -> Path:
        return self.models_dir / TENANTS_FOLDER / check_tenant_name(tenant)

    def folder(self, version: str, tenant: str = DEFAULT_TENANT) -> Path:
        """A version is its folder's name, so it is an id: no path separators, no leading dot, and
        short enough for any file system (a long one would fail deep in the OS)."""
        if not version or "/" in version or version.startswith("."):
            raise InvalidInput.of("version", f"{version[:128]!r} is not a model version")
        return self.tenant_folder(tenant) / require_id("version", version)

    def list(self, tenant: str = DEFAULT_TENANT) -> list[ModelInfo]:
        active = self._active_version(tenant)
        infos = []
        for folder in _version_folders(self.tenant_folder(tenant)):
            try:
                infos.append(_info(folder.name, read_meta(folder), active))
            except ModelArtifactError as exc:  # one bad folder must not hide the others
                log.warning("skipping model folder %s: %s", folder.name[:128], exc)
        infos.sort(key=lambda i: (i.created_at.isoformat() if i.created_at else "", i.version), reverse=True)
        return infos

    def _active_version(self, tenant: str) -> str:
        model = self.active(tenant)
        return model.version if model is not None else ""

    def info(self, version: str, tenant: str = DEFAULT_TENANT) -> ModelInfo:
        folder = self.folder(version, tenant)
        if not folder.exists():
            raise NotFound("model version", version, field="version")
        return _info(version, read_meta(folder), self._active_version(tenant))

    def activate(self, version: str, tenant: str = DEFAULT_TENANT) -> tuple[ModelInfo, str]:
        """Load, validate, record, swap. A corrupt folder is refused and the active model stays."""
        folder = self.folder(version, tenant)
        if not folder.exists():
            raise NotFound("model version", version, field="version")
        with self._lock:  # not while an erasure rewrites the folder, nor loaded before one
            # everything that can refuse the folder runs before any effect: load, then describe it
            model = replace(load_model(folder), version=version)
            info = replace(_info(version, model.meta, ""), active=True)
            previous = self._active_version(tenant)
            self._store.record_activation(version, self._clock(), tenant)
            self._active[tenant] = model
            self._checked[tenant] = (time.monotonic(), self._mark(version, tenant))
        log.info("model %s active for %s (was %s)", version, tenant, previous or "none")
        return info, previous

    def forget_learner(self, tenant: str, learner_id: str) -> int:
        """Remove an erased learner's identity from every stored version of the tenant (and from
        retired ones) that has it: their row is dropped from both factor models, every other row
        stays, and the learner scores as a new one would. The served model changes with it.
        Versions are rewritten in place, so one activated later no longer knows the learner either.
        Returns how many versions changed."""
        name = f"id:{model_key(tenant, learner_id)}"
        changed = 0
        with self._lock:
            folders = [
                *_version_folders(self.tenant_folder(tenant)),
                *_version_folders(self.models_dir / RETIRED_FOLDER),
            ]
            for folder in folders:
                if name not in read_meta(folder).get("user_features", ()):
                    continue
                rewrite_model(load_model(folder).without_user_features([name]), folder)
                changed += 1
            active = self._active.get(tenant)
            if active is not None and name in active.user_space.index:
                self._active[tenant] = active.without_user_features([name])
            if active is not None:
                self._checked[tenant] = (time.monotonic(), self._mark(active.version, tenant))
        return changed

    def rollback(self, tenant: str = DEFAULT_TENANT) -> tuple[ModelInfo, str]:
        """Re-activate the version that was active before the current one."""
        history = [v for v, _ in self._store.activation_history(tenant)]
        current = history[-1] if history else ""
        for version in reversed(history[:-1]):
            if version != current:
                return self.activate(version, tenant)
        raise PreconditionFailed("no earlier model version to roll back to", subject="model")

    # upgrade --------------------------------------------------------------------------------
    def upgrade_legacy(self) -> tuple[str, ...]:
        """Models from before models had tenants (models/<version>/) hold learners of every tenant,
        and raw attribute values as features. At start each is rewritten without its attribute
        features (no schema was declared for it) and either adopted by the one tenant whose learners
        it holds (its activation carried over) or, holding several tenants' learners, retired to
        models/retired/: never served again, still reached by erasure. Returns what was done."""
        if not self.models_dir.exists():
            return ()
        owner_only_folder(self.models_dir)
        legacy_history = [v for v, _ in self._store.activation_history(LEGACY_TENANT)]
        legacy_active = legacy_history[-1] if legacy_history else ""
        done: list[str] = []
        for folder in _version_folders(self.models_dir):
            if folder.name in (TENANTS_FOLDER, RETIRED_FOLDER):
                continue
            try:
                model = load_model(folder)
            except ModelArtifactError as exc:
                log.error("old model folder %s cannot be read and is left as it is: %s", folder, exc)
                continue
            model = model.without_user_features([n for n in model.user_space.names if n.startswith("attr:")])
            tenants = sorted({n[3:].split("/", 1)[0] for n in model.identity_names()})
            if len(tenants) <= 1:
                tenant = tenants[0] if tenants else DEFAULT_TENANT
                save_model(model, self.folder(folder.name, tenant))
                if folder.name == legacy_active and not self._store.activation_history(tenant):
                    self._store.record_activation(folder.name, self._clock(), tenant)
                done.append(f"model {folder.name} now belongs to tenant {tenant}")
            else:
                target = self.models_dir / RETIRED_FOLDER / folder.name
                owner_only_folder(target.parent)
                save_model(model, target)
                message = (
                    f"model {folder.name} holds learners of {len(tenants)} tenants ({', '.join(tenants)}) and is "
                    f"retired to {target}: a model now serves one tenant. Retrain each tenant with "
                    "`recommender train --tenant TENANT` (or TrainModel with the tenant's ml token)"
                )
                log.error("%s", message)
                done.append(message)
            shutil.rmtree(folder)
        return tuple(done)


def _version_folders(parent: Path) -> list[Path]:
    if not parent.exists():
        return []
    return sorted(f for f in parent.iterdir() if f.is_dir() and not f.name.startswith("."))


_DEFAULT_BKT = BKTModel()
NO_MODEL_MARK = ("", 0, 0)  # the mark of a tenant with no activation


def _info(version: str, meta: Mapping[str, Any], active: str) -> ModelInfo:
    """What a folder's meta.json says about it; ModelArtifactError when a field is malformed
    (a hand-edited or foreign meta.json), so callers refuse that folder alone."""
    try:
        created = meta.get("created_at")
        metrics = meta.get("metrics", {}).get("luban", {}) if isinstance(meta.get("metrics"), dict) else {}
        created_at = datetime.fromisoformat(created) if isinstance(created, str) else None
        counts = meta.get("counts", {})
        return ModelInfo(
            version=version,
            created_at=created_at,
            active=version == active,
            metrics=finite_metrics(metrics),
            data_fingerprint=str(meta.get("data_fingerprint", "")),
            training_events=int(counts.get("events", 0)) if isinstance(counts, dict) else 0,
        )
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise ModelArtifactError(f"model {version}: meta.json is malformed ({exc})") from exc


# training -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainOutcome:
    version: str
    evaluation: Evaluation
    activated: bool
    previous_version: str
    previous_metrics: Mapping[str, float]
    seconds: float


def training_data_from_store(store: Store, catalog: Catalog, tenant: str = DEFAULT_TENANT) -> TrainingData:
    """One tenant's events and learners, and nobody else's (erased learners are gone from the
    store, so a training run that starts after an erasure never sees them)."""
    learners = {model_key(t, x.learner_id): x for t, x in store.iter_learners(tenant)}
    events = (replace(e, learner_id=model_key(t, e.learner_id)) for t, e in store.iter_events(tenant))
    return TrainingData(catalog, build_event_table(events, catalog), learners)


def training_data_from_files(
    events_file: Path, catalog_file: Path, learners_file: Path | None = None, tenant: str | None = None
) -> tuple[TrainingData, list[str]]:
    """Training data from files in the generic format, with the problems found (line numbers).
    With `tenant`, learners are named as that tenant's (model_key), so a model trained on the
    files and saved for the tenant is reached by its erasures."""
    key: Callable[[str], str] = (lambda x: x) if tenant is None else (lambda x: model_key(tenant, x))
    try:
        catalog = build_catalog(*catalog_parts_from_dict(json.loads(catalog_file.read_text(encoding="utf-8-sig"))))
    except (OSError, ValueError) as exc:
        raise InvalidInput.of("catalog", f"cannot read {catalog_file}: {exc}") from exc
    problems: list[str] = []

    def good_events() -> Iterable[Any]:
        for item in read_events(events_file):
            if isinstance(item, BadRow):
                problems.append(f"{events_file}:{item.line}: {item.error}")
            else:
                yield item[1] if tenant is None else replace(item[1], learner_id=key(item[1].learner_id))

    table = build_event_table(good_events(), catalog)
    if table.dropped:
        problems.append(f"{table.dropped} events name modules or skills that are not in the catalog")
    learners: dict[str, Learner] = {}
    if learners_file is not None:
        for item in read_learners(learners_file):
            if isinstance(item, BadRow):
                problems.append(f"{learners_file}:{item.line}: {item.error}")
            else:
                learners[key(item[1].learner_id)] = item[1]
    return TrainingData(catalog, table, learners), problems


def load_feature_schema(path: Path | None) -> FeatureSchema:
    """The operator's feature schema file (none: no attribute becomes a feature); an identifier
    declared as a feature is refused here, before anything is served or trained."""
    if path is None:
        return NO_FEATURES
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput.of("feature_schema_file", f"cannot read {path}: {exc}") from exc
    return FeatureSchema.from_json(doc, str(path))


class TrainingService:
    """Trains, evaluates against the active model on the same split, saves, and promotes the new
    version only if it is better (or forced). Every run uses the service's feature schema, whatever
    the caller's config says: which attributes may reach a model is the operator's decision."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: Store,
        catalogs: CatalogService,
        clock: Clock,
        features: FeatureSchema = NO_FEATURES,
    ) -> None:
        self._registry = registry
        self._store = store
        self._catalogs = catalogs
        self._clock = clock
        self.features = features
        self._jobs: dict[str, TrainingJob] = {}  # the jobs this process runs, as last written
        self._lock = threading.Lock()

    def train(
        self,
        config: TrainConfig,
        *,
        tenant: str = DEFAULT_TENANT,
        data: TrainingData | None = None,
        force: bool = False,
        activate: bool = True,
        progress: Progress | None = None,
    ) -> TrainOutcome:
        started = time.perf_counter()
        config = replace(config, features=self.features)
        report = progress or (lambda _m, _f: None)
        # erasures that the data may predate: since the store was read, or any (files, a caller's data)
        read_at: datetime | None = self._clock() if data is None else None
        if data is None:
            report("reading the store", 0.0)
            data = training_data_from_store(self._store, self._catalogs.require(tenant), tenant)
        if len(data.events) < MIN_EVENTS:
            raise PreconditionFailed(
                f"{len(data.events)} usable events; at least {MIN_EVENTS} are needed to train", subject="training data"
            )
        split = make_split("temporal", data.events, seed=config.seed)
        evaluation, _ = evaluate(data, split, config, progress=lambda m, f: report(f"evaluate: {m}", 0.05 + 0.5 * f))
        new_metrics = evaluation.models["luban"]
        previous = self._registry.active(tenant)
        previous_metrics: dict[str, float] = {}
        if previous is not None:
            report(f"scoring the active model {previous.version} on the same split", 0.6)
            previous_metrics = score_model(data, split, previous, evaluation.stacking)
        report("training on all events", 0.65)
        model = train_hybrid(data, config, progress=lambda m, f: report(f"final: {m}", 0.65 + 0.3 * f))
        model = self._without_erased(model, read_at)
        now = self._clock()
        base = f"{now:%Y%m%dT%H%M%S}-{model.meta['data_fingerprint'][:8]}-s{config.seed}"
        version, n = base, 1
        while self._registry.folder(version, tenant).exists():  # same second, data and seed
            n += 1
            version = f"{base}-{n}"
        owner_only_folder(self._registry.models_dir)
        save_model(
            replace(model, version=version),
            self._registry.folder(version, tenant),
            {
                "created_at": now.isoformat(),
                "metrics": evaluation.to_json()["models"],
                "evaluation": evaluation.to_json(),
                "compared_with": {"version": previous.version if previous else "", "metrics": previous_metrics},
            },
        )
        better = previous is None or _beats(new_metrics, previous_metrics)
        activated = False
        if activate and (better or force):
            self._registry.activate(version, tenant)
            activated = True
        report("done", 1.0)
        return TrainOutcome(
            version=version,
            evaluation=evaluation,
            activated=activated,
            previous_version=previous.version if previous else "",
            previous_metrics=previous_metrics,
            seconds=time.perf_counter() - started,
        )

    def _without_erased(self, model: HybridModel, since: datetime | None) -> HybridModel:
        """A learner erased after the run's data was read leaves the model before it is saved (the
        erasure could not reach a model that did not exist yet). Data from files may predate any
        erasure, so then every recorded erasure counts."""
        erased = self._store.erased_since(since or datetime.fromtimestamp(0, UTC))
        if not erased:
            return model
        gone = []
        for name in model.identity_names():
            tenant, _, learner_id = name[3:].partition("/")
            if learner_id and erasure_subject(tenant, learner_id) in erased:
                gone.append(name)
        return model.without_user_features(gone)

    # background jobs ------------------------------------------------------------------------
    def start_job(self, config: TrainConfig, *, force: bool, tenant: str = DEFAULT_TENANT) -> TrainingJob:
        """Start training on the tenant's data in the background; refuse at once what would fail.
        One job runs per tenant, whichever process runs it (jobs are in the store); another
        tenant's job is never named."""
        self._catalogs.require(tenant)
        check_tenant_name(tenant)
        events = self._store.count_events(tenant)
        if events < MIN_EVENTS:
            raise PreconditionFailed(f"the store holds {events} events; at least {MIN_EVENTS} are needed to train")
        with self._lock:
            now = self._clock()
            running = next((j for j in self.jobs(tenant, limit=5) if j.active), None)
            if running is not None:
                raise PreconditionFailed(
                    f"training job {running.job_id} is already running; poll it with GetTrainingJob",
                    subject="training",
                )
            job = TrainingJob(job_id=uuid.uuid4().hex[:16], started_at=now, tenant=tenant, updated_at=now)
            self._store.save_training_job(job)
            self._jobs[job.job_id] = job
        threading.Thread(
            target=self._run_job, args=(job, config, force), name=f"train-{job.job_id}", daemon=True
        ).start()
        return job

    def _run_job(self, job: TrainingJob, config: TrainConfig, force: bool) -> None:
        lock = threading.Lock()
        current = [job]

        def publish(**changes: Any) -> None:
            """The job with `changes`, written where every process reads it; a store that fails
            to take a progress note does not stop the training."""
            with lock:
                current[0] = updated = replace(current[0], **changes, updated_at=self._clock())
                self._jobs[updated.job_id] = updated
                try:
                    self._store.save_training_job(updated)
                except LubanError:
                    log.warning("training job %s: its state could not be stored", updated.job_id, exc_info=True)

        def progress(message: str, fraction: float) -> None:
            value = max(current[0].progress, min(fraction, 1.0))
            if message != current[0].message or value - current[0].progress >= PROGRESS_STEP:
                publish(message=message, progress=value)

        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(JOB_HEARTBEAT.total_seconds()):
                publish()

        publish(state="running")
        threading.Thread(target=heartbeat, name=f"train-{job.job_id}-heartbeat", daemon=True).start()
        try:
            outcome = self.train(config, tenant=job.tenant, force=force, progress=progress)
        except Exception as exc:
            log.exception("training job %s failed", job.job_id)
            done.set()
            publish(state="failed", message=str(exc), finished_at=self._clock())
        else:
            done.set()
            publish(
                state="succeeded",
                progress=1.0,
                model_version=outcome.version,
                activated=outcome.activated,
                metrics=dict(finite_metrics(outcome.evaluation.models["luban"])),
                message=(
                    f"{outcome.version} {'activated' if outcome.activated else 'not activated (not better than '}"
                    f"{'' if outcome.activated else outcome.previous_version + ')'}"
                ),
                finished_at=self._clock(),
            )

    def job_counts(self) -> dict[str, int]:
        """This process's jobs by state (each process exports its own)."""
        counts = dict.fromkeys(JOB_STATES, 0)
        for job in list(self._jobs.values()):
            counts[job.state] += 1
        return counts

    def jobs(self, tenant: str = DEFAULT_TENANT, limit: int = 50) -> list[TrainingJob]:
        """The tenant's jobs, whichever process ran them, newest first."""
        now = self._clock()
        return [j.as_seen_at(now) for j in self._store.training_jobs(tenant, limit)]

    def job(self, job_id: str, tenant: str = DEFAULT_TENANT) -> TrainingJob:
        """The tenant's job; another tenant's is NOT_FOUND, as one that does not exist."""
        job = self._store.training_job(tenant, require_id("job_id", job_id))
        if job is None:
            raise NotFound("training job", job_id, field="job_id")
        return job.as_seen_at(self._clock())


def _beats(new: Mapping[str, float], old: Mapping[str, float]) -> bool:
    """Better on the first metric that differs (AUC, then NDCG@10); ties keep the active model."""
    for key in COMPARE_ON:
        a, b = new.get(key, float("nan")), old.get(key, float("nan"))
        if math.isnan(a) or math.isnan(b):
            continue
        if abs(a - b) > 1e-9:
            return a > b
    return False
