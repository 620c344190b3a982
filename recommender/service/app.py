"""The service graph for one process, built once at the entry point (server or CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from recommender.config import Settings
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock, system_clock
from recommender.service.learners import LearnerService
from recommender.service.models import ModelRegistry, TrainingService
from recommender.service.paths import PathService
from recommender.storage import Store, open_store


@dataclass
class App:
    settings: Settings
    store: Store
    catalogs: CatalogService
    learners: LearnerService
    paths: PathService
    models: ModelRegistry
    training: TrainingService
    clock: Clock

    def close(self) -> None:
        self.learners.close()
        self.store.close()


def build_app(settings: Settings, clock: Clock = system_clock, store: Store | None = None) -> App:
    store = store or open_store(settings.store_url, timeout_seconds=settings.store_timeout_seconds)
    store.create_schema()
    catalogs = CatalogService(store, settings.catalog_refresh_seconds)
    registry = ModelRegistry(store, settings.models_dir, clock)
    registry.load_active()
    learners = LearnerService(
        store,
        catalogs,
        bkt=registry.bkt,
        clock=clock,
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
    )
    paths = PathService(
        store,
        catalogs,
        model=registry.active,
        clock=clock,
        mastery_threshold=settings.mastery_threshold,
        planning_threads=settings.planning_threads,
        check_after_studies=settings.check_after_studies,
        required_confidence=settings.required_confidence,
    )
    return App(
        settings=settings,
        store=store,
        catalogs=catalogs,
        learners=learners,
        paths=paths,
        models=registry,
        training=TrainingService(registry, store, catalogs, clock),
        clock=clock,
    )
