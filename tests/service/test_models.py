"""Registry and training against a real store: promote-if-better, rollback, erasure."""

from __future__ import annotations

import pytest

from recommender.errors import ModelArtifactError, NotFound, PreconditionFailed
from recommender.ml.train import TrainConfig
from recommender.service.app import App
from recommender.service.models import training_data_from_store
from recommender.service.recommend import PathRequest
from recommender.storage.store import DEFAULT_TENANT
from tests.ml.world import world, world_catalog

CONFIG = TrainConfig(seed=5, epochs=8, components=8)


def load_world(app: App, n: int = 200) -> None:
    catalog = world_catalog()
    app.catalogs.upsert(catalog.skills.values(), catalog.modules.values(), catalog.roles.values(), replace=True)
    data, events = world(n)
    app.learners.upsert_many(DEFAULT_TENANT, list(data.learners.values()))
    assert app.learners.record_batch(DEFAULT_TENANT, events).accepted == len(events)


def test_first_model_is_activated_then_only_a_better_one(app: App) -> None:
    load_world(app)
    first = app.training.train(CONFIG)
    assert first.activated and first.previous_version == ""
    assert app.models.active() is not None and app.models.active().version == first.version  # type: ignore[union-attr]
    same = app.training.train(CONFIG)
    assert not same.activated, "an equally good model does not replace the active one"
    assert same.previous_metrics["auc"] >= same.evaluation.models["luban"]["auc"] - 1e-9
    forced = app.training.train(CONFIG, force=True)
    assert forced.activated
    versions = [i.version for i in app.models.list()]
    assert {first.version, same.version, forced.version} <= set(versions)
    assert [i.version for i in app.models.list() if i.active] == [forced.version]


def test_rollback_returns_to_the_previous_version(app: App) -> None:
    load_world(app)
    with pytest.raises(PreconditionFailed, match="no earlier model"):
        app.models.rollback()
    a = app.training.train(CONFIG).version
    b = app.training.train(CONFIG, force=True).version
    info, previous = app.models.rollback()
    assert (info.version, previous) == (a, b)
    assert app.models.active().version == a  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        app.models.activate("no-such-version")


def test_corrupt_model_is_refused_and_the_active_one_stays(app: App) -> None:
    load_world(app)
    good = app.training.train(CONFIG).version
    bad = app.training.train(CONFIG, activate=False).version
    (app.models.folder(bad) / "arrays.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelArtifactError):
        app.models.activate(bad)
    assert app.models.active().version == good  # type: ignore[union-attr]


def test_active_model_serves_paths_and_profiles(app: App) -> None:
    load_world(app)
    version = app.training.train(CONFIG).version
    path = app.paths.recommend(DEFAULT_TENANT, PathRequest("l0000", target_role_id="r"))
    assert path.model_version == version
    assert app.learners.profile(DEFAULT_TENANT, "l0000").skills, "profiles still served"
    assert app.learners._bkt(DEFAULT_TENANT) is app.models.active().bkt  # type: ignore[union-attr]  # fitted BKT now updates profiles


def test_erased_learners_are_invisible_to_training(app: App) -> None:
    load_world(app, 50)
    app.learners.delete(DEFAULT_TENANT, "l0003")
    data = training_data_from_store(app.store, app.catalogs.require())
    assert "default/l0003" not in data.events.learner_ids
    assert "default/l0003" not in data.learners
    assert len(data.events.learner_ids) == 49
