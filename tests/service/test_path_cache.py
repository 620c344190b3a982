"""The path cache (service.paths.PathCache) in one process, on both stores, with a hand-advanced
clock: a repeated request with nothing new gets the very path planned before (its generated_at
the planning time), and exactly the events that can change a path plan a new one. Across server
processes: tests/test_processes.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.catalog import Skill
from recommender.domain.learner import Learner
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.service.recommend import PathRequest
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0, make_settings, tiny_catalog
from tests.service.test_models import CONFIG, load_world

ASK = PathRequest("ana")


def ana(**change: object) -> Learner:
    return replace(Learner("ana", languages=("en",), target_role_id="welder"), **change)  # type: ignore[arg-type]


def result(event_id: str, score: float = 1.0) -> AssessmentEvent:
    return AssessmentEvent(event_id, "ana", "safety-101", score, T0 - timedelta(hours=1))


def test_a_path_is_served_from_the_cache_until_its_evidence_changes(tiny_app: App, clock: ManualClock) -> None:
    paths, learners = tiny_app.paths, tiny_app.learners
    learners.upsert(DEFAULT_TENANT, ana())
    planned = paths.recommend(DEFAULT_TENANT, ASK)
    clock.advance(minutes=5)
    again = paths.recommend(DEFAULT_TENANT, ASK)
    assert again is planned and again.generated_at == T0, "nothing changed: the same path, stamped when planned"

    learners.record(DEFAULT_TENANT, result("e1"))
    after_result = paths.recommend(DEFAULT_TENANT, ASK)
    assert after_result is not planned and after_result.generated_at == clock()
    learners.record(DEFAULT_TENANT, result("e1"))  # a retry: a duplicate changes nothing
    assert paths.recommend(DEFAULT_TENANT, ASK) is after_result

    shorter = paths.recommend(DEFAULT_TENANT, replace(ASK, max_steps=1))
    assert shorter is not after_result and len(shorter.steps) <= 1
    assert paths.recommend(DEFAULT_TENANT, ASK) is after_result, "each request's options are cached apart"

    learners.upsert(DEFAULT_TENANT, ana(weekly_minutes=90))
    after_upsert = paths.recommend(DEFAULT_TENANT, ASK)
    assert after_upsert is not after_result

    tiny_app.catalogs.upsert([Skill("extra", {"en": "Extra"}, "manufacturing")], [], [], replace=False)
    after_catalog = paths.recommend(DEFAULT_TENANT, ASK)
    assert after_catalog is not after_upsert

    tiny_app.learners.delete(DEFAULT_TENANT, "ana")
    learners.upsert(DEFAULT_TENANT, ana(weekly_minutes=90))
    assert paths.recommend(DEFAULT_TENANT, ASK) is not after_catalog, "an erased learner's path is not served again"


def test_a_cached_path_expires_as_forgetting_moves_on(tiny_app: App, clock: ManualClock) -> None:
    tiny_app.learners.upsert(DEFAULT_TENANT, ana())
    tiny_app.learners.record(DEFAULT_TENANT, result("e1"))
    planned = tiny_app.paths.recommend(DEFAULT_TENANT, ASK)
    clock.advance(seconds=tiny_app.settings.path_cache_seconds)
    assert tiny_app.paths.recommend(DEFAULT_TENANT, ASK) is planned
    clock.advance(seconds=1)
    replanned = tiny_app.paths.recommend(DEFAULT_TENANT, ASK)
    assert replanned is not planned and replanned.generated_at == clock()


def test_a_model_activation_replans(app: App) -> None:
    load_world(app, 60)
    first = app.training.train(CONFIG).version
    second = app.training.train(CONFIG, force=True).version
    ask = PathRequest("l0001", target_role_id="r")
    planned = app.paths.recommend(DEFAULT_TENANT, ask)
    assert planned.model_version == second and app.paths.recommend(DEFAULT_TENANT, ask) is planned
    app.models.activate(first)
    swapped = app.paths.recommend(DEFAULT_TENANT, ask)
    assert swapped is not planned and swapped.model_version == first


def test_a_cache_of_size_zero_plans_every_call(store_url: str, tmp_path: Path, clock: ManualClock) -> None:
    app = build_app(make_settings(store_url, tmp_path, path_cache_size=0), clock=clock)
    try:
        app.catalogs.upsert(*tiny_catalog(), replace=True)
        app.learners.upsert(DEFAULT_TENANT, ana())
        first = app.paths.recommend(DEFAULT_TENANT, ASK)
        second = app.paths.recommend(DEFAULT_TENANT, ASK)
        assert second is not first and second == first
    finally:
        app.close()
