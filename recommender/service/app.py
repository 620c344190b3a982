"""The service graph for one process, built once at the entry point (server or CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from recommender.config import Settings
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock, system_clock
from recommender.service.learners import LearnerService
from recommender.service.models import ModelRegistry, TrainingService, load_feature_schema
from recommender.service.recommend import PathCache, PathService
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
        self.paths.close()
        self.store.close()


def build_app(settings: Settings, clock: Clock = system_clock, store: Store | None = None) -> App:
    features = load_feature_schema(settings.feature_schema_file)
    store = store or open_store(settings.store_url, timeout_seconds=settings.store_timeout_seconds)
    store.create_schema()
    catalogs = CatalogService(store, settings.catalog_refresh_seconds)
    registry = ModelRegistry(store, settings.models_dir, clock, settings.catalog_refresh_seconds)
    registry.upgrade_legacy()
    paths = PathService(
        store,
        catalogs,
        model=registry.active,
        clock=clock,
        mastery_confidence=settings.mastery_confidence,
        check_after_studies=settings.check_after_studies,
        max_module_attempts=settings.max_module_attempts,
        planning_threads=settings.planning_threads,
        planner_kernel=settings.planner_kernel,
        cache=PathCache(settings.path_cache_size, timedelta(seconds=settings.path_cache_seconds)),
        share=settings.path_cache_shared,
        plan_ahead=settings.path_plan_ahead,
        # another process's results are polled for only when there are other processes
        poll_seconds=settings.path_plan_ahead_poll_seconds if settings.processes > 1 else 0.0,
    )
    learners = LearnerService(
        store,
        catalogs,
        bkt=registry.bkt,
        clock=clock,
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
        forget=registry.forget_learner,
        on_result=paths.learner_changed,
    )
    return App(
        settings=settings,
        store=store,
        catalogs=catalogs,
        learners=learners,
        paths=paths,
        models=registry,
        training=TrainingService(registry, store, catalogs, clock, features),
        clock=clock,
    )
