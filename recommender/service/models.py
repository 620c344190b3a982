"""Model registry and training jobs.

The active model is one reference, swapped atomically: a request reads it once and finishes on
the model it started with, so activation needs no downtime. Activations are recorded in the store,
so `rollback` and several server processes agree on which version serves.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from recommender.datasets.formats import BadRow, read_events, read_learners
from recommender.domain.catalog import Catalog, build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.domain.ids import require_id
from recommender.domain.learner import Learner
from recommender.errors import InvalidInput, ModelArtifactError, NotFound, PreconditionFailed
from recommender.kt.bkt import BKTModel
from recommender.ml.artifacts import finite_metrics, load_model, read_meta, save_model
from recommender.ml.data import TrainingData, build_event_table
from recommender.ml.evaluate import Evaluation, evaluate, make_split, score_model
from recommender.ml.model import HybridModel
from recommender.ml.train import TrainConfig, train_hybrid
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock
from recommender.service.paths import model_key
from recommender.storage.store import Store

log = logging.getLogger("recommender.models")
COMPARE_ON = ("auc", "ndcg@10")
MIN_EVENTS = 10
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ModelInfo:
    version: str
    created_at: datetime | None
    active: bool
    metrics: Mapping[str, float]
    data_fingerprint: str
    training_events: int


class ModelRegistry:
    def __init__(self, store: Store, models_dir: Path, clock: Clock) -> None:
        self._store = store
        self.models_dir = models_dir
        self._clock = clock
        self._active: HybridModel | None = None
        self._lock = threading.Lock()

    # serving --------------------------------------------------------------------------------
    def active(self) -> HybridModel | None:
        return self._active

    def bkt(self) -> BKTModel:
        model = self._active
        return model.bkt if model is not None else _DEFAULT_BKT

    def load_active(self) -> HybridModel | None:
        """At startup (and to follow other processes): serve the store's latest activation."""
        history = self._store.activation_history()
        if not history:
            return None
        version = history[-1][0]
        current = self._active
        if current is not None and current.version == version:
            return current
        try:
            self._active = replace(load_model(self._folder(version)), version=version)
        except (ModelArtifactError, InvalidInput) as exc:
            log.error("active model %s cannot be loaded, serving without a model: %s", version, exc)
            return None
        return self._active

    # registry -------------------------------------------------------------------------------
    def _folder(self, version: str) -> Path:
        """A version is its folder's name, so it is an id: no path separators, no leading dot, and
        short enough for any file system (a long one would fail deep in the OS)."""
        return self.models_dir / require_id("version", version)

    def list(self) -> list[ModelInfo]:
        active = self._active.version if self._active else ""
        infos = []
        if self.models_dir.exists():
            for folder in sorted(self.models_dir.iterdir(), reverse=True):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                try:
                    infos.append(_info(folder.name, read_meta(folder), active))
                except ModelArtifactError as exc:  # one bad folder must not hide the others
                    log.warning("skipping model folder %s: %s", folder.name[:128], exc)
        infos.sort(key=lambda i: (i.created_at.isoformat() if i.created_at else "", i.version), reverse=True)
        return infos

    def info(self, version: str) -> ModelInfo:
        folder = self._folder(version)
        if not folder.exists():
            raise NotFound("model version", version, field="version")
        return _info(version, read_meta(folder), self._active.version if self._active else "")

    def activate(self, version: str) -> tuple[ModelInfo, str]:
        """Load, validate, record, swap. A corrupt folder is refused and the active model stays."""
        folder = self._folder(version)
        if not folder.exists():
            raise NotFound("model version", version, field="version")
        # everything that can refuse the folder runs before any effect: load, then describe it
        model = replace(load_model(folder), version=version)
        info = replace(_info(version, model.meta, ""), active=True)
        with self._lock:
            previous = self._active.version if self._active else ""
            self._store.record_activation(version, self._clock())
            self._active = model
        log.info("model %s active (was %s)", version, previous or "none")
        return info, previous

    def rollback(self) -> tuple[ModelInfo, str]:
        """Re-activate the version that was active before the current one."""
        history = [v for v, _ in self._store.activation_history()]
        current = history[-1] if history else ""
        for version in reversed(history[:-1]):
            if version != current:
                return self.activate(version)
        raise PreconditionFailed("no earlier model version to roll back to", subject="model")


_DEFAULT_BKT = BKTModel()


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


def training_data_from_store(store: Store, catalog: Catalog) -> TrainingData:
    """Every tenant's events and learners (erased learners are gone from the store, so a
    training run can never see them)."""
    learners = {model_key(t, x.learner_id): x for t, x in store.iter_learners()}
    events = (replace(e, learner_id=model_key(t, e.learner_id)) for t, e in store.iter_events())
    return TrainingData(catalog, build_event_table(events, catalog), learners)


def training_data_from_files(
    events_file: Path, catalog_file: Path, learners_file: Path | None = None
) -> tuple[TrainingData, list[str]]:
    """Training data from files in the generic format, with the problems found (line numbers)."""
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
                yield item[1]

    table = build_event_table(good_events(), catalog)
    if table.dropped:
        problems.append(f"{table.dropped} events name modules or skills that are not in the catalog")
    learners: dict[str, Learner] = {}
    if learners_file is not None:
        for item in read_learners(learners_file):
            if isinstance(item, BadRow):
                problems.append(f"{learners_file}:{item.line}: {item.error}")
            else:
                learners[item[1].learner_id] = item[1]
    return TrainingData(catalog, table, learners), problems


class TrainingService:
    """Trains, evaluates against the active model on the same split, saves, and promotes the new
    version only if it is better (or forced)."""

    def __init__(self, registry: ModelRegistry, store: Store, catalogs: CatalogService, clock: Clock) -> None:
        self._registry = registry
        self._store = store
        self._catalogs = catalogs
        self._clock = clock
        self._jobs: dict[str, TrainingJob] = {}
        self._running: str = ""
        self._lock = threading.Lock()

    def train(
        self,
        config: TrainConfig,
        *,
        data: TrainingData | None = None,
        force: bool = False,
        activate: bool = True,
        progress: Progress | None = None,
    ) -> TrainOutcome:
        started = time.perf_counter()
        report = progress or (lambda _m, _f: None)
        if data is None:
            report("reading the store", 0.0)
            data = training_data_from_store(self._store, self._catalogs.require())
        if len(data.events) < MIN_EVENTS:
            raise PreconditionFailed(
                f"{len(data.events)} usable events; at least {MIN_EVENTS} are needed to train", subject="training data"
            )
        split = make_split("temporal", data.events, seed=config.seed)
        evaluation, _ = evaluate(data, split, config, progress=lambda m, f: report(f"evaluate: {m}", 0.05 + 0.5 * f))
        new_metrics = evaluation.models["luban"]
        previous = self._registry.active()
        previous_metrics: dict[str, float] = {}
        if previous is not None:
            report(f"scoring the active model {previous.version} on the same split", 0.6)
            previous_metrics = score_model(data, split, previous)
        report("training on all events", 0.65)
        model = train_hybrid(data, config, progress=lambda m, f: report(f"final: {m}", 0.65 + 0.3 * f))
        now = self._clock()
        base = f"{now:%Y%m%dT%H%M%S}-{model.meta['data_fingerprint'][:8]}-s{config.seed}"
        version, n = base, 1
        while (self._registry.models_dir / version).exists():  # same second, data and seed
            n += 1
            version = f"{base}-{n}"
        save_model(
            replace(model, version=version),
            self._registry.models_dir / version,
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
            self._registry.activate(version)
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

    # background jobs ------------------------------------------------------------------------
    def start_job(self, config: TrainConfig, *, force: bool) -> TrainingJob:
        """Start training on the store's data in the background; refuse at once what would fail."""
        self._catalogs.require()
        events = self._store.count_events()
        if events < MIN_EVENTS:
            raise PreconditionFailed(f"the store holds {events} events; at least {MIN_EVENTS} are needed to train")
        with self._lock:
            running = self._jobs.get(self._running)
            if running is not None and running.state in ("queued", "running"):
                raise PreconditionFailed(
                    f"training job {running.job_id} is already running; poll it with GetTrainingJob",
                    subject="training",
                )
            job = TrainingJob(job_id=uuid.uuid4().hex[:16], started_at=self._clock())
            self._jobs[job.job_id] = job
            self._running = job.job_id
        threading.Thread(
            target=self._run_job, args=(job, config, force), name=f"train-{job.job_id}", daemon=True
        ).start()
        return job

    def _run_job(self, job: TrainingJob, config: TrainConfig, force: bool) -> None:
        job.state = "running"

        def progress(message: str, fraction: float) -> None:
            job.message, job.progress = message, max(job.progress, min(fraction, 1.0))

        try:
            outcome = self.train(config, force=force, progress=progress)
        except Exception as exc:
            log.exception("training job %s failed", job.job_id)
            job.state, job.message = "failed", str(exc)
        else:
            job.state, job.progress = "succeeded", 1.0
            job.model_version, job.activated = outcome.version, outcome.activated
            job.metrics = dict(finite_metrics(outcome.evaluation.models["luban"]))
            job.message = (
                f"{outcome.version} {'activated' if outcome.activated else 'not activated (not better than '}"
                f"{'' if outcome.activated else outcome.previous_version + ')'}"
            )
        finally:
            job.finished_at = self._clock()

    def job_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("queued", "running", "succeeded", "failed"), 0)
        for job in list(self._jobs.values()):
            counts[job.state] += 1
        return counts

    def job(self, job_id: str) -> TrainingJob:
        job = self._jobs.get(require_id("job_id", job_id))
        if job is None:
            raise NotFound("training job", job_id, field="job_id")
        return job


@dataclass
class TrainingJob:
    job_id: str
    started_at: datetime
    state: str = "queued"  # queued | running | succeeded | failed
    progress: float = 0.0
    message: str = ""
    model_version: str = ""
    activated: bool = False
    finished_at: datetime | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def _beats(new: Mapping[str, float], old: Mapping[str, float]) -> bool:
    """Better on the first metric that differs (AUC, then NDCG@10); ties keep the active model."""
    for key in COMPARE_ON:
        a, b = new.get(key, float("nan")), old.get(key, float("nan"))
        if math.isnan(a) or math.isnan(b):
            continue
        if abs(a - b) > 1e-9:
            return a > b
    return False
