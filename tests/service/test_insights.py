"""The dashboard's use cases (service.insights) against the service's own single-learner answers:
the cohort figures are what RecommendPath would say for each learner, a snapshot follows the
store (a new result re-plans that learner only; an erasure drops them), and the model registry
follows activations made by another process on the same store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recommender.config import Settings
from recommender.domain.assessment import AssessmentEvent
from recommender.domain.path import StopReason
from recommender.errors import LubanError
from recommender.ml.metrics import expected_calibration_error, reliability
from recommender.ml.train import TrainConfig
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.service.demo import load_demo
from recommender.service.insights import READINESS_BINS, TO_READINESS_STEPS, Insights
from recommender.service.recommend import PathRequest

NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[App, ManualClock]]:
    clock = ManualClock(NOW)
    app = build_app(Settings(store_url=f"sqlite:///{tmp_path / 'i.db'}", models_dir=tmp_path / "models"), clock)
    load_demo(app, learners=60)
    yield app, clock
    app.close()


def test_cohort_figures_are_each_learners_own_path(demo: tuple[App, ManualClock]) -> None:
    app, _ = demo
    overview = Insights(app).overview("default")
    now, after, modules, hours, failing = [], [], [], [], 0
    for _, learner in app.store.iter_learners("default"):
        try:
            path = app.paths.recommend("default", PathRequest(learner.learner_id, TO_READINESS_STEPS))
        except LubanError:
            continue
        now.append(path.readiness_now)
        after.append(path.readiness_after)
        if path.stop_reason is StopReason.ROLE_READY:
            modules.append(len(path.steps))
            hours.append(sum(s.estimated_minutes for s in path.steps) / 60)
        failing += path.stop_reason is StopReason.REPEATED_FAILURE
    assert overview.learners == 60 and overview.planned == len(now)
    bins = np.minimum((np.array(now) * READINESS_BINS).astype(int), READINESS_BINS - 1)
    assert overview.readiness_now == tuple(np.bincount(bins, minlength=READINESS_BINS))
    assert overview.mean_after == pytest.approx(np.mean(after))
    assert overview.reach == len(modules)
    assert overview.modules.median == pytest.approx(np.median(modules))
    assert overview.hours.p90 == pytest.approx(np.quantile(hours, 0.9))
    assert len([s for s in overview.stalled if s.failing_module_ids]) >= failing


def test_filters_partition_the_cohort(demo: tuple[App, ManualClock]) -> None:
    app, _ = demo
    insights = Insights(app)
    whole = insights.overview("default")
    by_role = [insights.overview("default", role_id=r) for r, _ in whole.roles]
    assert sum(o.learners for o in by_role) == whole.learners
    assert sum(o.reach for o in by_role) == whole.reach
    for o in by_role:
        assert o.heatmap.role_ids == (o.role_id,) and o.heatmap.learners == (o.learners,)
        assert np.nanmin(o.heatmap.below) >= 0 and np.nanmax(o.heatmap.below) <= 1
    assert insights.overview("default", cohort_id="no-such-cohort").learners == 0


def test_a_snapshot_follows_new_results_and_erasures(demo: tuple[App, ManualClock]) -> None:
    app, clock = demo
    insights = Insights(app, refresh_seconds=0)
    first = insights.snapshot("default")
    assert insights.snapshot("default") is first  # nothing changed: nothing re-planned
    learner = first.learners[0]
    row = first.rows[learner.learner_id]
    clock.advance(minutes=5)
    module_id = app.catalogs.require().module_ids[0]
    event = AssessmentEvent("new-1", learner.learner_id, module_id, 1.0, occurred_at=clock() - timedelta(minutes=1))
    app.learners.record("default", event)
    second = insights.snapshot("default")
    assert second is not first and second.replanned < len(first.rows)
    days = second.rows[learner.learner_id].days_since_practice
    assert days < 1 / 24 and (math.isnan(row.days_since_practice) or row.days_since_practice > days)
    other = first.learners[1].learner_id
    assert second.rows[other] is first.rows[other]  # untouched learners keep their rows
    app.learners.delete("default", other)
    third = insights.snapshot("default", wait=True)
    assert other not in third.rows and len(third.rows) == len(first.rows) - 1


def test_a_registry_follows_an_activation_made_by_another_process(tmp_path: Path) -> None:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'm.db'}", models_dir=tmp_path / "models", catalog_refresh_seconds=0
    )
    dashboard, server = build_app(settings), build_app(settings)
    try:
        load_demo(dashboard, learners=30)
        first = dashboard.training.train(TrainConfig(epochs=2, components=4), force=True).version
        second = dashboard.training.train(TrainConfig(epochs=2, components=4, seed=3), activate=False).version
        assert server.models.active() is not None and server.models.active().version == first  # type: ignore[union-attr]
        dashboard.models.activate(second)
        assert server.models.active().version == second  # type: ignore[union-attr]
        assert server.paths.planner().model_version == second
    finally:
        dashboard.close()
        server.close()


def test_reliability_bins_are_the_calibration_error_s_bins() -> None:
    rng = np.random.default_rng(3)
    predictions = rng.random(500)
    labels = rng.random(500) < predictions**2
    bins = reliability(labels, predictions)
    assert sum(n for _, _, n in bins) == 500
    assert all(0 <= p <= 1 and 0 <= o <= 1 for p, o, _ in bins)
    ece = sum(n * abs(o - p) for p, o, n in bins) / 500
    assert ece == pytest.approx(expected_calibration_error(labels, predictions))
