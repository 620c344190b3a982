"""The hybrid model on a world with a known answer; artifacts that round-trip and refuse tampering."""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recommender.domain.learner import Learner
from recommender.errors import ModelArtifactError
from recommender.kt.bkt import DEFAULT_PARAMS, SkillParams
from recommender.ml.artifacts import load_model, save_model
from recommender.ml.evaluate import evaluate, make_split
from recommender.ml.features import mastery_bucket
from recommender.ml.metrics import auc
from recommender.ml.model import SUCCESS_READS_MASTERY_META, HybridModel
from recommender.ml.train import TrainConfig, train_hybrid
from tests.ml.world import world

CONFIG = TrainConfig(seed=3, epochs=10, components=8)


@pytest.fixture(scope="module")
def trained() -> HybridModel:
    data, _ = world()
    return train_hybrid(data, CONFIG, version="test-v1")


def test_new_learners_are_scored_from_features_alone(trained: HybridModel) -> None:
    data, _ = world()
    catalog = data.catalog
    newcomers = [Learner("new-aa", country="AA", languages=("en",)), Learner("new-bb", country="BB", languages=("en",))]
    vectors, _ = trained.learner_vectors(newcomers, [x.learner_id for x in newcomers], [{}, {}])
    p = trained.success_probability(vectors, catalog)
    x_cols = [catalog.module_index[m] for m in catalog.module_ids if m.startswith("x")]
    y_cols = [catalog.module_index[m] for m in catalog.module_ids if m.startswith("y")]
    assert p[0, x_cols].min() > p[0, y_cols].max(), "AA newcomers are predicted to pass x, not y"
    assert p[1, y_cols].min() > p[1, x_cols].max()
    labels = np.r_[np.ones(5), np.zeros(5), np.zeros(5), np.ones(5)].astype(bool)
    assert auc(labels, np.r_[p[0, x_cols], p[0, y_cols], p[1, x_cols], p[1, y_cols]]) >= 0.95


def test_quality_floor_on_the_cold_split() -> None:
    data, _ = world(400, seed=1)
    evaluation, _ = evaluate(data, make_split("cold", data.events, seed=2), CONFIG)
    luban, popularity = evaluation.models["luban"], evaluation.models["popularity"]
    assert luban["auc"] >= 0.85, evaluation.table()
    assert luban["auc"] > popularity["auc"] + 0.2
    assert luban["auc"] > evaluation.models["cf_only"]["auc"], "features beat identity alone for cold learners"
    assert evaluation.warm is not None and evaluation.warm["luban"]["auc"] >= 0.85


def test_training_is_deterministic_given_the_seed() -> None:
    data, _ = world(120)
    a, b = train_hybrid(data, CONFIG), train_hybrid(data, CONFIG)
    np.testing.assert_array_equal(a.success.user_embeddings, b.success.user_embeddings)
    np.testing.assert_array_equal(a.ranking.item_biases, b.ranking.item_biases)


def test_artifact_round_trip_scores_identically(trained: HybridModel, tmp_path: Path) -> None:
    data, _ = world()
    folder = save_model(trained, tmp_path / "v1")
    loaded = load_model(folder)
    ids = list(data.events.learner_ids[:20])
    learners = [data.learners[i] for i in ids]
    before, _ = trained.learner_vectors(learners, ids, [{}] * 20)
    after, _ = loaded.learner_vectors(learners, ids, [{}] * 20)
    np.testing.assert_array_equal(
        trained.success_probability(before, data.catalog), loaded.success_probability(after, data.catalog)
    )
    assert loaded.bkt == trained.bkt and loaded.version == "test-v1"


def test_item_emissions_round_trip_and_older_artifacts_keep_the_default_pair(
    trained: HybridModel, tmp_path: Path
) -> None:
    """Older artifacts load as their model was trained: without item emissions (six columns) the
    default pair, before `item_learn` (eight) an item result followed by the skill's `learn`, and
    before the studied pair (nine) every item read with the item pair."""
    sharp = {s: replace(p, item_guess=0.07, item_slip=0.03, item_learn=0.02, studied_item_guess=0.07,
                        studied_item_slip=0.03) for s, p in trained.bkt.params.items()}  # fmt: skip
    assert sharp, "the fixture's model has fitted skills"
    model = replace(trained, bkt=replace(trained.bkt, params=sharp))
    assert load_model(save_model(model, tmp_path / "v1")).bkt == model.bkt
    studied = {s: replace(p, studied_item_guess=0.2, studied_item_slip=0.15) for s, p in sharp.items()}
    distinct = replace(model, bkt=replace(model.bkt, params=studied))
    assert load_model(save_model(distinct, tmp_path / "v2")).bkt == distinct.bkt, "the studied pair round-trips"
    older = save_model(model, tmp_path / "v0")
    with np.load(older / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["bkt"] = arrays["bkt"][:, :9]  # as written before the studied pair
    np.savez(older / "arrays.npz", **arrays)
    assert load_model(older).bkt == model.bkt, "the studied pair is the item pair, as the model was served"
    arrays["bkt"] = arrays["bkt"][:, :8]  # as written before item_learn
    np.savez(older / "arrays.npz", **arrays)
    loaded = load_model(older).bkt.params
    assert all(p.item_learn == p.learn for p in loaded.values())
    assert {s: replace(p, item_learn=0.02) for s, p in loaded.items()} == sharp
    arrays["bkt"] = arrays["bkt"][:, :6]  # as written before item emissions
    np.savez(older / "arrays.npz", **arrays)
    loaded = load_model(older).bkt.params
    assert {(p.item_guess, p.item_slip, p.studied_item_guess, p.studied_item_slip) for p in loaded.values()} == {
        (DEFAULT_PARAMS.item_guess, DEFAULT_PARAMS.item_slip, DEFAULT_PARAMS.item_guess, DEFAULT_PARAMS.item_slip)
    }
    assert all(p.item_learn == p.learn for p in loaded.values())
    assert {s: replace(p, item_guess=0.07, item_slip=0.03, item_learn=0.02, studied_item_guess=0.07,
                       studied_item_slip=0.03) for s, p in loaded.items()} == sharp  # fmt: skip
    arrays["bkt"] = arrays["bkt"][:, :5]
    np.savez(older / "arrays.npz", **arrays)
    with pytest.raises(ModelArtifactError, match="shape"):
        load_model(older)


def test_pickle_bearing_artifact_is_refused(trained: HybridModel, tmp_path: Path) -> None:
    folder = save_model(trained, tmp_path / "v1")
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["success_user_biases"] = np.array([object()] * len(arrays["success_user_biases"]), dtype=object)
    np.savez(folder / "arrays.npz", **arrays)
    with pytest.raises(ModelArtifactError, match=r"non-numeric|corrupt"):
        load_model(folder)
    # a raw pickle in place of the arrays is refused too
    (folder / "arrays.npz").write_bytes(pickle.dumps({"boom": 1}))
    with pytest.raises(ModelArtifactError):
        load_model(folder)


def test_truncated_or_incompatible_artifact_is_refused(trained: HybridModel, tmp_path: Path) -> None:
    folder = save_model(trained, tmp_path / "v1")
    data = (folder / "arrays.npz").read_bytes()
    (folder / "arrays.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelArtifactError, match="corrupt"):
        load_model(folder)
    other = save_model(trained, tmp_path / "v2")
    meta = json.loads((other / "meta.json").read_text())
    meta["schema_version"] = 99
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="schema 99"):
        load_model(other)
    third = save_model(trained, tmp_path / "v3")
    meta = json.loads((third / "meta.json").read_text())
    meta["user_features"] = meta["user_features"][:-1]
    (third / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="shape"):
        load_model(third)


def test_npz_is_a_plain_zip_of_npy_files(trained: HybridModel, tmp_path: Path) -> None:
    folder = save_model(replace(trained, version="v"), tmp_path / "v")
    with zipfile.ZipFile(folder / "arrays.npz") as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'O'" not in header and b"|O" not in header, f"{name} holds objects"


def test_the_success_model_never_learns_from_mastery_its_labels_made(trained: HybridModel, tmp_path: Path) -> None:
    """A training learner's mastery is BKT's estimate after the very results `success` is fitted
    on: it reads no mastery, trained or served (saved and loaded too), and the ranking model does.
    An artifact trained before this (no flag in its meta) is served as it was trained."""
    data, _ = world()
    ids = list(data.events.learner_ids[:5])
    learners = [data.learners[i] for i in ids]
    token = next(n for n in trained.user_space.names if n.startswith("m:"))  # m:<skill>:<bucket>
    skill, bucket = token[2:].rsplit(":", 1)
    value = next(v for v in np.linspace(0.0, 1.0, 101) if mastery_bucket(float(v)) == bucket)
    none: list[dict[str, float]] = [{}] * 5
    some = [{skill: float(value)}] * 5
    loaded = load_model(save_model(trained, tmp_path / "v1"))
    for model in (trained, loaded):
        assert not model.success_reads_mastery
        np.testing.assert_array_equal(
            model.success_vectors(learners, ids, none), model.success_vectors(learners, ids, some)
        )
        (s_none, r_none), (s_some, r_some) = (
            model.learner_vectors(learners, ids, none),
            model.learner_vectors(learners, ids, some),
        )
        np.testing.assert_array_equal(s_none, s_some)
        assert not np.array_equal(r_none, r_some), "ranking reads mastery"
    older = replace(trained, meta={k: v for k, v in trained.meta.items() if k != SUCCESS_READS_MASTERY_META})
    assert older.success_reads_mastery
    assert not np.array_equal(older.success_vectors(learners, ids, none), older.success_vectors(learners, ids, some))


def test_without_a_fit_every_skill_is_served_the_parameters_given() -> None:
    """fit_bkt off serves the untrained defaults, or the parameters the lab asks for (fixed-kt)."""
    data, _ = world(120)
    given = SkillParams(prior=0.01, learn=0.3, guess=0.4, slip=0.2)
    for unfitted in (DEFAULT_PARAMS, given):
        model = train_hybrid(data, replace(CONFIG, fit_bkt=False, unfitted_bkt=unfitted))
        for skill_id in data.catalog.skill_ids:
            served = model.bkt.of(skill_id)
            assert (served.prior, served.learn, served.guess, served.slip) == (
                unfitted.prior, unfitted.learn, unfitted.guess, unfitted.slip,
            ), skill_id  # fmt: skip
