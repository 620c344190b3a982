"""Training jobs live in the store: a job one process runs is seen, polled and respected by every
other process on the same store (two Apps here, as two server processes or the dashboard)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.domain.jobs import JOB_LOST_AFTER, TrainingJob
from recommender.errors import NotFound, PreconditionFailed
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0, make_settings
from tests.service.test_models import CONFIG, load_world


@pytest.fixture
def other(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[App]:
    """A second process's App on the same store and model folder."""
    application = build_app(make_settings(store_url, tmp_path), clock=clock)
    yield application
    application.close()


def finished(app: App, job_id: str) -> TrainingJob:
    deadline = time.monotonic() + 120
    while True:
        job = app.training.job(job_id)
        if not job.active:
            return job
        assert time.monotonic() < deadline, "training job did not finish"
        time.sleep(0.05)


def test_a_job_run_by_one_process_is_polled_and_respected_by_another(app: App, other: App) -> None:
    load_world(app)
    job = app.training.start_job(CONFIG, force=False)
    seen = other.training.job(job.job_id)
    assert seen.job_id == job.job_id and seen.tenant == DEFAULT_TENANT
    if seen.active:  # one job per tenant, whichever process runs it
        with pytest.raises(PreconditionFailed, match=job.job_id):
            other.training.start_job(CONFIG, force=False)
    done = finished(other, job.job_id)
    assert done.state == "succeeded" and done.progress == 1.0 and done.activated, done.message
    assert done.model_version and 0.5 < done.metrics["auc"] <= 1.0
    assert [j.job_id for j in other.training.jobs()] == [job.job_id]
    with pytest.raises(NotFound):
        other.training.job(job.job_id, tenant="another")


def test_a_job_whose_process_stopped_is_reported_failed_and_frees_the_tenant(
    app: App, other: App, clock: ManualClock
) -> None:
    load_world(app)
    lost = TrainingJob("lost-job", T0, DEFAULT_TENANT, state="running", progress=0.4, updated_at=T0)
    app.store.save_training_job(lost)  # its process crashed mid-training: nobody writes it again
    with pytest.raises(PreconditionFailed, match="lost-job"):
        other.training.start_job(CONFIG, force=False)
    clock.advance(seconds=JOB_LOST_AFTER.total_seconds() + 1)
    seen = other.training.job("lost-job")
    assert seen.state == "failed" and "stopped" in seen.message and seen.progress == 0.4
    started = other.training.start_job(CONFIG, force=False)
    assert finished(app, started.job_id).state == "succeeded"
