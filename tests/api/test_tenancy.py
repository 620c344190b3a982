"""Issue #21, tenant isolation all the way down, against a real server with two colleges' tokens:
features only by declaration (no attribute oracle), erasure that reaches the stored models and the
store's bytes, and models and catalogs that belong to one tenant."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from recommender.api import mapping
from recommender.api.grpc_server import RunningServer, create_server
from recommender.api.interceptors import ROLES_FOR_METHOD
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.domain.catalog import Catalog, Module, Skill, SkillWeight, build_catalog
from recommender.errors import InvalidInput
from recommender.ml.features import FeatureSchema
from recommender.ml.model import FactorModel
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from tests.conftest import T0, make_settings, tiny_catalog
from tests.ml.world import world, world_catalog

A, B, OPS = "college-a", "college-b", "luban-ops"
TOKENS = {
    (A, "platform"): "a-platform-0123456789",
    (A, "ml"): "a-ml-0123456789abcdef",
    (A, "admin"): "a-admin-0123456789abc",
    (B, "platform"): "b-platform-0123456789",
    (B, "ml"): "b-ml-0123456789abcdef",
    (B, "admin"): "b-admin-0123456789abc",
    (OPS, "operator"): "ops-operator-0123456789",
}
SCHEMA = {
    "attributes": [
        {"key": "track_pref", "kind": "categorical", "values": ["x", "y"]},
        {"key": "age", "kind": "bucketed", "bounds": [20, 30]},
    ]
}


def auth(tenant: str, role: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[(tenant, role)]}"),)


@dataclass
class Colleges:
    app: App
    stub: pb_grpc.LearningPathServiceStub
    running: RunningServer
    tmp_path: Path


def start(store_url: str, tmp_path: Path, clock: ManualClock) -> Colleges:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"token": v, "tenant": t, "roles": [r]} for (t, r), v in TOKENS.items()]))
    schema = tmp_path / "features.json"
    schema.write_text(json.dumps(SCHEMA))
    settings = make_settings(store_url, tmp_path, auth_tokens_file=tokens, feature_schema_file=schema)
    app = build_app(settings, clock)
    running = create_server(app, "127.0.0.1:0")
    running.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    return Colleges(app, pb_grpc.LearningPathServiceStub(channel), running, tmp_path)


@pytest.fixture
def colleges(sqlite_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Colleges]:
    c = start(sqlite_url, tmp_path, clock)
    try:
        yield c
    finally:
        c.running.stop(0)
        c.app.close()


def email(learner_id: str) -> str:
    return f"{learner_id}.mail@college-a.example"


def load_college(c: Colleges, tenant: str, n: int = 120) -> None:
    """The seeded world under `tenant`, every learner with an e-mail and a national id (never
    declared) and a declared track preference and age."""
    catalog = world_catalog()
    c.app.catalogs.upsert(catalog.skills.values(), catalog.modules.values(), catalog.roles.values(), replace=True)
    data, events = world(n)
    learners = [
        replace(x, target_role_id="r", attributes={
            "email": email(x.learner_id), "national_id": f"NID{x.learner_id}X",
            "track_pref": "x" if x.country == "AA" else "y", "age": str(18 + i % 20)})
        for i, x in enumerate(data.learners.values())
    ]  # fmt: skip
    c.app.learners.upsert_many(tenant, learners)
    assert c.app.learners.record_batch(tenant, events).accepted == len(events)


def train(c: Colleges, tenant: str, *, force: bool = True) -> pb.TrainingJob:
    job_id = c.stub.TrainModel(pb.TrainModelRequest(seed=5, epochs=5, force=force), metadata=auth(tenant, "ml")).job_id
    deadline = time.monotonic() + 120
    while True:
        job = c.stub.GetTrainingJob(pb.GetTrainingJobRequest(job_id=job_id), metadata=auth(tenant, "ml"))
        if job.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED):
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.message
            return job
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.05)


def first_paths(c: Colleges, tenant: str, learners: list[pb.Learner]) -> list[list[tuple[str, float]]]:
    out = c.stub.GeneratePaths(
        pb.GeneratePathsRequest(learners=learners, max_steps=4), metadata=auth(tenant, "platform")
    )
    return [[(s.module_id, s.expected_success) for s in o.path.steps] for o in out]


def made_up(learner_id: str, **attributes: str) -> pb.Learner:
    return pb.Learner(learner_id=learner_id, country="AA", languages=["en"], target_role_id="r", attributes=attributes)


# (a) features by declaration -------------------------------------------------------------------
def test_issue21_no_attribute_oracle_for_any_tenant(colleges: Colleges) -> None:
    """The issue's oracle: two made-up learners differing only in an undeclared attribute, one
    holding a real learner's value, score identically for every tenant; a declared one counts."""
    load_college(colleges, A)
    version = train(colleges, A).model_version
    known = email("l0002")
    values = [known, "x@y.example", "", "アリス@例え.jp", "a" * 256]
    for tenant in (A, B):
        probes = [made_up(f"probe-{i}", email=v, national_id=f"NID{v[:8]}") for i, v in enumerate(values)]
        paths = first_paths(colleges, tenant, [*probes, made_up("probe-bare")])
        assert paths[0] and all(p == paths[0] for p in paths), f"{tenant}: an undeclared attribute changed scores"
    declared = first_paths(colleges, A, [made_up("p-3", track_pref="x"), made_up("p-4", track_pref="y")])
    assert declared[0] != declared[1], "a declared attribute reaches the model (the probe above could fail)"
    folder = next(colleges.app.settings.models_dir.rglob(f"{version}/meta.json")).parent
    raw = b"".join(p.read_bytes() for p in folder.iterdir())
    assert b"mail@college-a" not in raw and b"NIDl0" not in raw, "undeclared values never reach a model folder"
    names = json.loads((folder / "meta.json").read_text())["user_features"]
    assert {n for n in names if n.startswith("attr:")} <= {"attr:track_pref=x", "attr:track_pref=y",
                                                          "attr:age#0", "attr:age#1", "attr:age#2"}  # fmt: skip


@pytest.mark.parametrize(
    ("key", "why"),
    [("email", "mail"), ("E-Mail", "mail"), ("national_id", "nationalid"), ("phoneNumber", "phone"),
     ("first_name", "name"), ("student_id", "ends in 'id'"), ("passport_no", "passport")],
)  # fmt: skip
def test_issue21_identifiers_are_refused_as_features(key: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        FeatureSchema.from_json({"attributes": [{"key": key, "kind": "categorical", "values": ["a"]}]})


def test_issue21_a_schema_declaring_an_identifier_stops_the_service(
    sqlite_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    schema = tmp_path / "features.json"
    schema.write_text(json.dumps({"attributes": [{"key": "email", "kind": "categorical", "values": ["a@b.c"]}]}))
    with pytest.raises(InvalidInput, match="identifier"):
        build_app(make_settings(sqlite_url, tmp_path, feature_schema_file=schema), clock)


def test_issue21_schema_checks_every_declaration() -> None:
    with pytest.raises(InvalidInput) as exc:
        FeatureSchema.from_json({"attributes": [
            {"key": "track", "kind": "categorical"}, {"key": "age", "kind": "bucketed", "bounds": [30, 20]},
            {"key": "level", "kind": "free"}]})  # fmt: skip
    assert [v.field for v in exc.value.violations] == [f"feature schema.attributes[{i}]" for i in range(3)]
    schema = FeatureSchema.from_json(SCHEMA)
    assert schema.tokens({"track_pref": "x", "age": "25", "email": "a@b.c"}) == ["attr:age#1", "attr:track_pref=x"]
    assert schema.tokens({"track_pref": "z", "age": "old"}) == [], "undeclared values and non-numbers are missing"
    assert FeatureSchema.from_json(schema.to_json()) == schema


# (b) erasure that reaches everything ----------------------------------------------------------
VICTIM, VICTIM_EMAIL, VICTIM_NID = "victim-ada-7", "ada.lovelace@college-a.example", "NIDVICTIM77"


def add_victim(c: Colleges) -> None:
    learner = made_up(VICTIM, email=VICTIM_EMAIL, national_id=VICTIM_NID, track_pref="x", age="27")
    c.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=learner), metadata=auth(A, "platform"))
    for k, (module, score) in enumerate([("x-0", 1.0), ("x-1", 1.0), ("y-0", 0.0), ("y-2", 0.0), ("x-3", 1.0)]):
        result = pb.AssessmentResult(event_id=f"{VICTIM}-e{k}", learner_id=VICTIM, module_id=module, score=score)
        c.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result), metadata=auth(A, "platform"))


def store_files(c: Colleges) -> list[Path]:
    db = Path(c.app.settings.store_url.removeprefix("sqlite:///"))
    return [f for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if f.exists()]


def test_issue21_erasure_reaches_models_rows_and_store_bytes(colleges: Colleges) -> None:
    load_college(colleges, A)
    add_victim(colleges)
    versions = [train(colleges, A).model_version, train(colleges, A).model_version]
    key = f"{A}/{VICTIM}"
    assert colleges.app.models.active(A).knows_learner(key)  # type: ignore[union-attr]
    models_dir = colleges.app.settings.models_dir
    secrets = (VICTIM.encode(), VICTIM_EMAIL.encode(), VICTIM_NID.encode())
    before = b"".join(f.read_bytes() for f in [*models_dir.rglob("*"), *store_files(colleges)] if f.is_file())
    assert all(s in before for s in secrets[:1]), "the grep below finds the learner while they exist"

    gone = colleges.stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id=VICTIM), metadata=auth(A, "admin"))
    assert gone.deleted and gone.events_deleted == 5 and gone.models_updated == len(versions)

    for f in [*models_dir.rglob("*"), *store_files(colleges)]:
        if f.is_file():
            data = f.read_bytes()
            assert not [s for s in secrets if s in data], f"{f} still holds the erased learner"
    assert not colleges.app.models.active(A).knows_learner(key)  # type: ignore[union-attr]
    with pytest.raises(grpc.RpcError) as exc:
        colleges.stub.GetLearner(pb.GetLearnerRequest(learner_id=VICTIM), metadata=auth(A, "platform"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    for version in versions:  # an older version activated later does not know them either
        colleges.stub.ActivateModel(pb.ActivateModelRequest(version=version), metadata=auth(A, "ml"))
        reused = made_up(VICTIM, track_pref="x", age="27")
        colleges.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=reused), metadata=auth(A, "platform"))
        path = colleges.stub.RecommendPath(pb.RecommendPathRequest(learner_id=VICTIM, max_steps=4),
                                           metadata=auth(A, "platform"))  # fmt: skip
        fresh = first_paths(colleges, A, [replace_id(reused, "never-seen-1")])[0]
        assert [(s.module_id, s.expected_success) for s in path.steps] == fresh, "a re-used id scores as new"


def replace_id(learner: pb.Learner, learner_id: str) -> pb.Learner:
    copy = pb.Learner()
    copy.CopyFrom(learner)
    copy.learner_id = learner_id
    return copy


def test_issue21_store_and_model_files_are_owner_only(colleges: Colleges) -> None:
    load_college(colleges, A, 40)
    train(colleges, A)
    models_dir = colleges.app.settings.models_dir
    folders = [models_dir, *(p for p in models_dir.rglob("*") if p.is_dir())]
    files = [*(p for p in models_dir.rglob("*") if p.is_file()), *store_files(colleges)]
    assert folders and files
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}


def test_issue21_a_learner_erased_while_training_ran_leaves_the_new_model(colleges: Colleges) -> None:
    load_college(colleges, A, 40)
    add_victim(colleges)
    from recommender.ml.train import TrainConfig
    from recommender.service.models import training_data_from_store

    data = training_data_from_store(colleges.app.store, colleges.app.catalogs.require(), A)
    assert f"{A}/{VICTIM}" in data.learners, "the run read the learner"
    colleges.app.learners.delete(A, VICTIM)
    outcome = colleges.app.training.train(TrainConfig(seed=5, epochs=3, components=8), tenant=A, data=data, force=True)
    meta = next(colleges.app.settings.models_dir.rglob(f"{outcome.version}/meta.json")).read_bytes()
    assert VICTIM.encode() not in meta and b"id:college-a/l0001" in meta


# (c) models per tenant ------------------------------------------------------------------------
def code(call: Callable[[], object]) -> grpc.StatusCode:
    """The status a call ends with (a server stream is read to its end)."""
    try:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_issue21_each_tenant_trains_lists_and_activates_only_its_own_models(colleges: Colleges) -> None:
    load_college(colleges, A, 120)
    load_college(colleges, B, 40)
    job_a = train(colleges, A)
    stub = colleges.stub
    listed_a = stub.ListModels(pb.ListModelsRequest(), metadata=auth(A, "ml"))
    assert listed_a.active_version == job_a.model_version
    assert listed_a.models[0].training_events == 720, "A's events only (B holds 240 more)"
    meta = json.loads((colleges.app.models.folder(job_a.model_version, A) / "meta.json").read_text())
    assert {n.split("/")[0] for n in meta["user_features"] if n.startswith("id:")} == {f"id:{A}"}

    assert stub.ListModels(pb.ListModelsRequest(), metadata=auth(B, "ml")).models == []
    activate = pb.ActivateModelRequest(version=job_a.model_version)
    assert code(lambda: stub.ActivateModel(activate, metadata=auth(B, "ml"))) == grpc.StatusCode.NOT_FOUND
    job = pb.GetTrainingJobRequest(job_id=job_a.job_id)
    assert code(lambda: stub.GetTrainingJob(job, metadata=auth(B, "ml"))) == grpc.StatusCode.NOT_FOUND
    path_b = stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0001"), metadata=auth(B, "platform"))
    path_a = stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0001"), metadata=auth(A, "platform"))
    assert (path_a.model_version, path_b.model_version) == (job_a.model_version, ""), "B is not served A's model"

    job_b = train(colleges, B)
    assert stub.ListModels(pb.ListModelsRequest(), metadata=auth(B, "ml")).models[0].training_events == 240
    assert stub.ListModels(pb.ListModelsRequest(), metadata=auth(A, "ml")).active_version == job_a.model_version
    path_b = stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0001"), metadata=auth(B, "platform"))
    assert path_b.model_version == job_b.model_version
    assert {m.version for m in stub.ListModels(pb.ListModelsRequest(), metadata=auth(A, "ml")).models} == {
        job_a.model_version
    }


def test_issue21_a_running_job_of_one_tenant_does_not_block_or_name_itself_to_another(colleges: Colleges) -> None:
    load_college(colleges, A, 400)
    load_college(colleges, B, 40)
    slow = pb.TrainModelRequest(seed=1, epochs=60)
    running = colleges.stub.TrainModel(slow, metadata=auth(A, "ml")).job_id
    with pytest.raises(grpc.RpcError) as exc:
        colleges.stub.TrainModel(pb.TrainModelRequest(seed=2), metadata=auth(A, "ml"))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION and running in str(exc.value.details())
    assert train(colleges, B).model_version, "B trains while A's job runs"
    while colleges.app.training.job(running, A).state in ("queued", "running"):
        time.sleep(0.05)


# (f) the upgrade path -------------------------------------------------------------------------
def legacy_model(app: App, tenants: list[str], version: str) -> None:
    """A model as versions before tenancy trained and saved it: every tenant's learners, an
    undeclared attribute value as a feature, in models/<version>/, activated for everyone."""
    import numpy as np

    from recommender.domain.assessment import AssessmentEvent
    from recommender.ml.artifacts import save_model
    from recommender.ml.data import TrainingData, build_event_table
    from recommender.ml.features import FeatureSpace
    from recommender.ml.train import TrainConfig, train_hybrid
    from recommender.service.recommend import model_key
    from recommender.storage.store import LEGACY_TENANT

    catalog = app.catalogs.require()
    learners = {model_key(t, x.learner_id): x for t, x in app.store.iter_learners() if t in tenants}
    events: list[AssessmentEvent] = [
        replace(e, learner_id=model_key(t, e.learner_id)) for t, e in app.store.iter_events() if t in tenants
    ]
    model = train_hybrid(TrainingData(catalog, build_event_table(events, catalog), learners), TrainConfig(epochs=2))

    def with_row(f: FactorModel) -> FactorModel:
        return replace(f, user_embeddings=np.vstack([f.user_embeddings, f.user_embeddings[:1]]),
                       user_biases=np.append(f.user_biases, f.user_biases[:1]))  # fmt: skip

    model = replace(
        model,
        version=version,
        user_space=FeatureSpace((*model.user_space.names, f"attr:email={VICTIM_EMAIL}")),
        success=with_row(model.success),
        ranking=with_row(model.ranking),
    )
    save_model(model, app.settings.models_dir / version)
    meta = app.settings.models_dir / version / "meta.json"
    doc = json.loads(meta.read_text())
    del doc["feature_schema"]  # written before schemas existed
    meta.write_text(json.dumps(doc))
    app.store.record_activation(version, T0, LEGACY_TENANT)


def test_issue21_old_models_are_adopted_by_their_one_tenant_or_retired(
    sqlite_url: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    first = start(sqlite_url, tmp_path, clock)
    try:
        load_college(first, A, 40)
        load_college(first, B, 40)
        legacy_model(first.app, [A, B], "20260101T000000-shared")
        legacy_model(first.app, [A], "20260102T000000-only-a")
    finally:
        first.running.stop(0)
        first.app.close()
    caplog.set_level(logging.ERROR, logger="recommender.models")
    c = start(sqlite_url, tmp_path, clock)
    try:
        models_dir = c.app.settings.models_dir
        retired = models_dir / "retired" / "20260101T000000-shared"
        assert retired.exists() and not (models_dir / "20260101T000000-shared").exists()
        assert "recommender train --tenant TENANT" in caplog.text and "2 tenants" in caplog.text
        listed = c.stub.ListModels(pb.ListModelsRequest(), metadata=auth(A, "ml"))
        assert [m.version for m in listed.models] == ["20260102T000000-only-a"]
        assert listed.active_version == "20260102T000000-only-a", "the active one stays active for its tenant"
        assert c.stub.ListModels(pb.ListModelsRequest(), metadata=auth(B, "ml")).models == []
        retired_request = pb.ActivateModelRequest(version="20260101T000000-shared")
        for tenant in (A, B):
            with pytest.raises(grpc.RpcError) as exc:
                c.stub.ActivateModel(retired_request, metadata=auth(tenant, "ml"))
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        files = b"".join(p.read_bytes() for p in models_dir.rglob("*") if p.is_file())
        assert VICTIM_EMAIL.encode() not in files, "attribute values leave old models"
        assert b"id:college-b/l0003" in (retired / "meta.json").read_bytes()
        gone = c.stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id="l0003"), metadata=auth(B, "admin"))
        assert gone.models_updated == 1 and b"college-b/l0003" not in (retired / "meta.json").read_bytes()
        path = c.stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0001"), metadata=auth(A, "platform"))
        assert path.model_version == "20260102T000000-only-a"
    finally:
        c.running.stop(0)
        c.app.close()


# (d) catalogs per tenant ----------------------------------------------------------------------
def catalog_request(catalog: Catalog, **fields: bool) -> pb.UpsertCatalogRequest:
    return pb.UpsertCatalogRequest(
        skills=mapping.skills_to_proto(catalog.skills.values()),
        modules=mapping.modules_to_proto(catalog.modules.values()),
        roles=mapping.roles_to_proto(catalog.roles.values()),
        **fields,
    )


def shared_request(catalog: Catalog) -> pb.UpsertSharedCatalogRequest:
    return pb.UpsertSharedCatalogRequest(
        skills=mapping.skills_to_proto(catalog.skills.values()),
        modules=mapping.modules_to_proto(catalog.modules.values()),
        roles=mapping.roles_to_proto(catalog.roles.values()),
    )


def module_ids(c: Colleges, tenant: str, role: str = "platform") -> set[str]:
    return {m.module_id for m in c.stub.GetCatalog(pb.GetCatalogRequest(), metadata=auth(tenant, role)).modules}


def test_issue21_a_tenant_admin_changes_only_its_own_catalog(colleges: Colleges) -> None:
    stub = colleges.stub
    tiny = build_catalog(*tiny_catalog())
    stub.UpsertSharedCatalog(shared_request(tiny), metadata=auth(OPS, "operator"))
    assert module_ids(colleges, A) == module_ids(colleges, B) == set(tiny.modules), "both inherit the shared one"
    ana = made_up("ana", track_pref="x")
    ana.target_role_id = "welder"
    stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana), metadata=auth(A, "platform"))

    # the issue's case: B's admin replaces "the" catalog; A's paths keep working
    stub.UpsertCatalog(catalog_request(world_catalog(), replace=True, inherit_shared=False), metadata=auth(B, "admin"))
    assert module_ids(colleges, B) == set(world_catalog().modules)
    assert module_ids(colleges, A) == set(tiny.modules)
    path = stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana"), metadata=auth(A, "platform"))
    assert path.steps[0].module_id == "safety-101"
    shared = stub.GetSharedCatalog(pb.GetSharedCatalogRequest(), metadata=auth(B, "admin"))
    assert {m.module_id for m in shared.modules} == set(tiny.modules)

    # A adds a module of its own over the shared catalog; nobody else sees it
    extra = Module("welding-lab-201", {"en": "Welding lab"}, (SkillWeight("welding"),), ("welding-101",), ("en",))
    stub.UpsertCatalog(pb.UpsertCatalogRequest(modules=mapping.modules_to_proto([extra])), metadata=auth(A, "admin"))
    assert module_ids(colleges, A) == {*tiny.modules, "welding-lab-201"}
    shared = stub.GetSharedCatalog(pb.GetSharedCatalogRequest(), metadata=auth(OPS, "operator"))
    assert "welding-lab-201" not in module_ids(colleges, B) | {m.module_id for m in shared.modules}

    # the operator cannot pull the ground from under a tenant's own entries
    shrink = pb.UpsertSharedCatalogRequest(skills=mapping.skills_to_proto([Skill("safety")]), replace=True)
    with pytest.raises(grpc.RpcError) as exc:
        stub.UpsertSharedCatalog(shrink, metadata=auth(OPS, "operator"))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and A in str(exc.value.details())
    assert module_ids(colleges, A) == {*tiny.modules, "welding-lab-201"}, "nothing changed"
    for tenant, role in ((A, "admin"), (B, "admin"), (A, "platform")):
        with pytest.raises(grpc.RpcError) as exc:
            stub.UpsertSharedCatalog(shared_request(tiny), metadata=auth(tenant, role))
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED


# (e) tenant B against everything of tenant A, every RPC and role, both stores -----------------
A_LEARNER, A_SECRET, A_MODULE = "ana-a", "a-secret-value", "a-own-module-301"


@pytest.fixture
def any_store_colleges(store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Colleges]:
    c = start(store_url, tmp_path, clock)
    try:
        yield c
    finally:
        c.running.stop(0)
        c.app.close()


def a_world(c: Colleges) -> tuple[str, str]:
    """Tenant A: learners with results, one with an undeclared attribute, a trained and active
    model, and a module of its own over the shared catalog. Returns (model version, job id)."""
    load_college(c, A, 40)
    ana = made_up(A_LEARNER, note=A_SECRET)
    c.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana), metadata=auth(A, "platform"))
    result = pb.AssessmentResult(event_id="ana-a-1", learner_id=A_LEARNER, module_id="x-0", score=0.9)
    c.stub.RecordAssessment(pb.RecordAssessmentRequest(result=result), metadata=auth(A, "platform"))
    own = Module(A_MODULE, {"en": "A only"}, (SkillWeight("x"),), ("x-0",), ("en",))
    c.stub.UpsertCatalog(pb.UpsertCatalogRequest(modules=mapping.modules_to_proto([own])), metadata=auth(A, "admin"))
    job = train(c, A)
    return job.model_version, job.job_id


def a_state(c: Colleges) -> tuple[object, ...]:
    """Everything of A that B must not change, read as A."""
    a = c.stub
    learner = a.GetLearner(pb.GetLearnerRequest(learner_id=A_LEARNER), metadata=auth(A, "platform"))
    profile = a.GetSkillProfile(pb.GetSkillProfileRequest(learner_id=A_LEARNER), metadata=auth(A, "platform"))
    models = a.ListModels(pb.ListModelsRequest(), metadata=auth(A, "ml"))
    files = sorted((str(p), p.read_bytes()) for p in c.app.models.tenant_folder(A).rglob("*") if p.is_file())
    return (
        learner.SerializeToString(deterministic=True),
        [(s.skill_id, s.mastery, s.attempts) for s in profile.skills],
        sorted(m.module_id for m in a.GetCatalog(pb.GetCatalogRequest(), metadata=auth(A, "admin")).modules),
        models.active_version,
        sorted(m.version for m in models.models),
        c.app.store.count_events(A),
        files,
    )


def cross_tenant_table(version: str, job_id: str) -> list[tuple[str, Callable[..., object], grpc.StatusCode]]:
    """(RPC, call with B's (or the operator's) metadata aimed at A's things, the status expected
    when the role may call the RPC). Reads first: later rows write under B's own tenant."""
    probe = made_up(A_LEARNER)
    result = pb.AssessmentResult(event_id="b-probe-1", learner_id=A_LEARNER, module_id="x-0", score=0.9)
    b_module = Module("b-module-101", {"en": "B"}, (SkillWeight("x"),), (), ("en",))
    ok, not_found = grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND

    def stream(stub: Any, md: Any) -> pb.IngestSummary:
        summary: pb.IngestSummary = stub.RecordAssessments(iter([pb.RecordAssessmentsRequest(results=[result])]),
                                                           metadata=md)  # fmt: skip
        assert summary.accepted == 0 and summary.rejected[0].code == grpc.StatusCode.NOT_FOUND.value[0]
        return summary

    # TrainModel: B holds no events (A's are not B's to train on); DeleteLearner answers deleted=false;
    # UpsertSharedCatalog is the operator's, and re-states a shared skill, so A's catalog is unchanged
    return [
        ("GetLearner", lambda s, md: s.GetLearner(pb.GetLearnerRequest(learner_id=A_LEARNER), metadata=md), not_found),
        (
            "GetSkillProfile",
            lambda s, md: s.GetSkillProfile(pb.GetSkillProfileRequest(learner_id=A_LEARNER), metadata=md),
            not_found,
        ),
        (
            "RecommendPath",
            lambda s, md: s.RecommendPath(pb.RecommendPathRequest(learner_id=A_LEARNER), metadata=md),
            not_found,
        ),
        ("GeneratePaths", lambda s, md: s.GeneratePaths(pb.GeneratePathsRequest(learners=[probe]), metadata=md), ok),
        ("GetCatalog", lambda s, md: s.GetCatalog(pb.GetCatalogRequest(), metadata=md), ok),
        ("GetSharedCatalog", lambda s, md: s.GetSharedCatalog(pb.GetSharedCatalogRequest(), metadata=md), ok),
        ("ListModels", lambda s, md: s.ListModels(pb.ListModelsRequest(), metadata=md), ok),
        (
            "GetTrainingJob",
            lambda s, md: s.GetTrainingJob(pb.GetTrainingJobRequest(job_id=job_id), metadata=md),
            not_found,
        ),
        (
            "ActivateModel",
            lambda s, md: s.ActivateModel(pb.ActivateModelRequest(version=version), metadata=md),
            not_found,
        ),
        (
            "TrainModel",
            lambda s, md: s.TrainModel(pb.TrainModelRequest(), metadata=md),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            "RecordAssessment",
            lambda s, md: s.RecordAssessment(pb.RecordAssessmentRequest(result=result), metadata=md),
            not_found,
        ),
        ("RecordAssessments", stream, ok),
        (
            "DeleteLearner",
            lambda s, md: s.DeleteLearner(pb.DeleteLearnerRequest(learner_id=A_LEARNER), metadata=md),
            ok,
        ),
        (
            "UpsertCatalog",
            lambda s, md: s.UpsertCatalog(
                pb.UpsertCatalogRequest(modules=mapping.modules_to_proto([b_module])), metadata=md
            ),
            ok,
        ),
        (
            "UpsertSharedCatalog",
            lambda s, md: s.UpsertSharedCatalog(
                pb.UpsertSharedCatalogRequest(skills=mapping.skills_to_proto([Skill("x")])), metadata=md
            ),
            ok,
        ),
        ("UpsertLearner", lambda s, md: s.UpsertLearner(pb.UpsertLearnerRequest(learner=probe), metadata=md), ok),
    ]


@pytest.mark.slow
def test_issue21_tenant_b_reaches_nothing_of_tenant_a_over_every_rpc_and_role(any_store_colleges: Colleges) -> None:
    c = any_store_colleges
    version, job_id = a_world(c)
    before = a_state(c)
    table = cross_tenant_table(version, job_id)
    service = pb.DESCRIPTOR.services_by_name["LearningPathService"]
    assert [name for name, _, _ in table] and {name for name, _, _ in table} == set(service.methods_by_name)
    a_markers = (version.encode(), job_id.encode(), A_SECRET.encode(), A_MODULE.encode())
    seen: list[tuple[str, str, grpc.StatusCode]] = []
    for name, call, expected in table:
        for tenant, role in [(B, "platform"), (B, "ml"), (B, "admin"), (OPS, "operator")]:
            allowed = role in ROLES_FOR_METHOD[name]
            details = ""
            try:
                response = call(c.stub, auth(tenant, role))
                responses = list(response) if isinstance(response, Iterator) else [response]
                got = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                got, responses, details = exc.code(), [], str(exc.details())
            echoed = {"GetTrainingJob": job_id.encode(), "ActivateModel": version.encode()}.get(name)
            assert not [m for m in a_markers if m in details.encode() and m != echoed], f"{name}: {details}"
            want = expected if allowed else grpc.StatusCode.PERMISSION_DENIED
            assert got == want, f"{name} as {tenant}/{role}: {got}, expected {want}"
            for r in responses:
                data = r.SerializeToString()
                assert not [m for m in a_markers if m in data], f"{name} as {tenant}/{role} shows A's data"
            if name == "DeleteLearner" and got == grpc.StatusCode.OK:
                assert not responses[0].deleted
            if name == "GeneratePaths" and got == grpc.StatusCode.OK:
                assert responses[0].path.model_version != version
            seen.append((name, role, got))
    assert a_state(c) == before, "nothing of A changed"
    assert sum(code == grpc.StatusCode.PERMISSION_DENIED for _, _, code in seen) > 0
    assert {name for name, _, code in seen if code != grpc.StatusCode.PERMISSION_DENIED} == set(
        service.methods_by_name
    ), "every RPC was reached by some role of another tenant"


def test_issue21_training_from_files_is_the_tenants_and_never_brings_an_erased_learner_back(
    colleges: Colleges,
) -> None:
    """An export that predates an erasure still holds the learner: a model trained from it for the
    tenant leaves them out, and one trained before the erasure is reached by it."""
    from recommender.domain.codec import catalog_to_dict
    from recommender.ml.train import TrainConfig
    from recommender.service.models import training_data_from_files

    _, events = world(40)
    lines = ["learner_id,module_id,score,occurred_at"]
    lines += [f"{e.learner_id},{e.module_id},{e.score},{e.occurred_at.isoformat()}" for e in events]
    lines += [f"{VICTIM},x-{k},1.0,{T0.isoformat()}" for k in range(4)]
    (colleges.tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    (colleges.tmp_path / "catalog.json").write_text(json.dumps(catalog_to_dict(world_catalog())))
    files = (colleges.tmp_path / "events.csv", colleges.tmp_path / "catalog.json")
    config = TrainConfig(seed=5, epochs=3, components=8)

    data, _ = training_data_from_files(*files, tenant=A)
    before = colleges.app.training.train(config, tenant=A, data=data, force=True).version
    assert colleges.app.models.active(A).knows_learner(f"{A}/{VICTIM}")  # type: ignore[union-attr]
    assert colleges.app.learners.delete(A, VICTIM)[2] == 1, "the file-trained version is reached"
    data, _ = training_data_from_files(*files, tenant=A)
    after = colleges.app.training.train(config, tenant=A, data=data, force=True).version
    for version in (before, after):
        assert VICTIM.encode() not in (colleges.app.models.folder(version, A) / "meta.json").read_bytes()


def test_issue21_token_tenants_name_folders_and_the_operator_role_exists(tmp_path: Path) -> None:
    from recommender.service.auth import TokenBook

    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"token": "ops-0123456789abcdef", "tenant": "luban-ops", "roles": ["operator"]}]))
    assert TokenBook.load(good).principal("ops-0123456789abcdef") is not None
    for tenant in ("../college-a", "college a", ".hidden", ""):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps([{"token": "a-0123456789abcdef", "tenant": tenant, "roles": ["admin"]}]))
        with pytest.raises(ValueError, match="tenant"):
            TokenBook.load(bad)


def test_issue21_catalog_load_goes_to_the_shared_catalog_or_one_tenants(tmp_path: Path, sqlite_url: str) -> None:
    from recommender.cli import main
    from recommender.domain.codec import catalog_to_dict
    from recommender.storage import open_store

    tiny, world_file = tmp_path / "tiny.json", tmp_path / "world.json"
    tiny.write_text(json.dumps(catalog_to_dict(build_catalog(*tiny_catalog()))))
    world_file.write_text(json.dumps(catalog_to_dict(world_catalog())))
    store = ["--store-url", sqlite_url, "--models-dir", str(tmp_path / "models")]
    assert main([*store, "catalog", "load", str(tiny)]) == 0
    assert main([*store, "catalog", "load", str(world_file), "--merge", "--tenant", A]) == 0
    s = open_store(sqlite_url)
    try:
        shared, own_a = s.load_tenant_catalog(A)
        assert set(shared.modules) == set(build_catalog(*tiny_catalog()).modules)
        assert (
            own_a is not None
            and own_a.inherits
            and {m.module_id for m in own_a.modules} == set(world_catalog().modules)
        )
        assert s.load_tenant_catalog(B)[1] is None, "B inherits the shared catalog alone"
    finally:
        s.close()
