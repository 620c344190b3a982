"""A real server of two processes sharing one port (LUBAN_PROCESSES=2), on SQLite and PostgreSQL:
idempotency, model hot swap, tenancy and the path cache hold whichever process a call reaches.

The kernel spreads connections over the processes (SO_REUSEPORT); the tests open channels (each
its own connection) until every worker process holds one of them, checked in /proc, and then make
each call through every channel, so each check meets both processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.ml.train import TrainConfig
from recommender.service.app import build_app
from recommender.storage import open_store
from tests.conftest import _postgres_schema_url, make_settings, workers_of
from tests.service.test_models import load_world
from tests.test_durability import free_port

pytestmark = pytest.mark.slow

TOKENS = {"default": "default-token-0123456789", "other": "other-token-0123456789"}
ROLES = ["platform", "ml", "admin"]
MAX_CHANNELS = 24


@dataclass
class Cluster:
    process: subprocess.Popen[bytes]
    port: int
    stubs: list[pb_grpc.LearningPathServiceStub]
    channels: list[grpc.Channel]
    versions: tuple[str, str]
    store_url: str


def auth(tenant: str = "default") -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[tenant]}"),)


def connections_by_worker(pid: int, port: int) -> dict[int, int]:
    """Established connections to `port` that each worker process of `pid` holds."""
    established: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                established.add(f"socket:[{fields[9]}]")
    counts = {}
    for worker in workers_of(pid):
        fds = Path(f"/proc/{worker}/fd")
        counts[worker] = sum(1 for fd in fds.iterdir() if _link(fd) in established)
    return counts


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:
        return ""


def spread_channels(process: subprocess.Popen[bytes], port: int) -> list[grpc.Channel]:
    """Channels, each its own connection, until every worker process serves at least one."""
    channels: list[grpc.Channel] = []
    while len(channels) < MAX_CHANNELS:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        grpc.channel_ready_future(channel).result(timeout=30)
        channels.append(channel)
        counts = connections_by_worker(process.pid, port)
        if len(counts) == 2 and all(counts.values()):
            return channels
    pytest.fail(f"{MAX_CHANNELS} connections did not reach both worker processes: {counts}")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp(f"cluster-{request.param}")
    schema = None
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp / 'luban.db'}"
    else:
        schema = _postgres_schema_url()
        store_url = next(schema)
    app = build_app(make_settings(store_url, tmp))
    try:
        load_world(app, 120)
        config = TrainConfig(seed=5, epochs=3, components=8)
        versions = (app.training.train(config).version, app.training.train(config, force=True).version)
    finally:
        app.close()
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps([{"token": v, "tenant": k, "roles": ROLES} for k, v in TOKENS.items()]))
    port = free_port()
    env = {**os.environ, "LUBAN_STORE_URL": store_url, "LUBAN_ADDRESS": f"127.0.0.1:{port}",
           "LUBAN_MODELS_DIR": str(tmp / "models"), "LUBAN_LOG_FORMAT": "text", "LUBAN_PROCESSES": "2",
           "LUBAN_CATALOG_REFRESH_SECONDS": "0", "LUBAN_AUTH_TOKENS_FILE": str(tokens)}  # fmt: skip
    log = (tmp / "server.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "recommender", "serve"], env=env, stdout=log, stderr=log)
    channels: list[grpc.Channel] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as probe:
            grpc.channel_ready_future(probe).result(timeout=120)
        channels = spread_channels(process, port)
        stubs = [pb_grpc.LearningPathServiceStub(c) for c in channels]
        yield Cluster(process, port, stubs, channels, versions, store_url)
    finally:
        for channel in channels:
            channel.close()
        process.terminate()
        assert process.wait(timeout=60) == 0, "every worker drained and exited cleanly"
        log.close()
        assert b" INFO recommender.access rpc\n" in (tmp / "server.log").read_bytes(), "batched lines written by exit"
        if schema is not None:
            next(schema, None)


def test_every_process_is_healthy(cluster: Cluster) -> None:
    for channel in cluster.channels:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def result(event_id: str, learner: str, score: float) -> pb.RecordAssessmentRequest:
    return pb.RecordAssessmentRequest(
        result=pb.AssessmentResult(event_id=event_id, learner_id=learner, module_id="x-0", score=score)
    )


def test_a_result_is_recorded_once_whichever_process_gets_it(cluster: Cluster) -> None:
    first = cluster.stubs[0].RecordAssessment(result("idem-1", "l0001", 1.0), metadata=auth())
    assert not first.duplicate
    for stub in cluster.stubs:
        again = stub.RecordAssessment(result("idem-1", "l0001", 1.0), metadata=auth())
        assert again.duplicate, "a retry reaching another process is recognized"
        with pytest.raises(grpc.RpcError) as exc:
            stub.RecordAssessment(result("idem-1", "l0001", 0.0), metadata=auth())
        assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    store = open_store(cluster.store_url)
    try:
        before = store.count_events("default")
        errors: list[BaseException] = []

        def write(k: int) -> None:
            stub = cluster.stubs[k % len(cluster.stubs)]
            try:
                for i in range(25):
                    stub.RecordAssessment(result(f"many-{k}-{i}", f"l{(k + i) % 4:04d}", (i % 3) / 2), metadata=auth())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:2]
        assert store.count_events("default") == before + 100, "every acknowledged result stored once"
    finally:
        store.close()
    profiles = [stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="l0002"), metadata=auth())
                for stub in cluster.stubs]  # fmt: skip
    attempts = {tuple((s.skill_id, s.attempts) for s in p.skills) for p in profiles}
    assert len(attempts) == 1, "every process serves the same committed state"


def test_an_activation_reaches_every_process(cluster: Cluster) -> None:
    for k, version in enumerate((*cluster.versions, cluster.versions[0])):
        cluster.stubs[k % len(cluster.stubs)].ActivateModel(pb.ActivateModelRequest(version=version), metadata=auth())
        for stub in cluster.stubs:
            assert stub.ListModels(pb.ListModelsRequest(), metadata=auth()).active_version == version
            path = stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0003", target_role_id="r"), metadata=auth())
            assert path.model_version == version


def test_a_tenant_reaches_nothing_of_another_through_any_process(cluster: Cluster) -> None:
    own = pb.UpsertCatalogRequest(skills=[pb.Skill(skill_id="own-skill", names={"en": "Own"}, domain="d")])
    cluster.stubs[0].UpsertCatalog(own, metadata=auth("other"))
    for stub in cluster.stubs:
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetLearner(pb.GetLearnerRequest(learner_id="l0001"), metadata=auth("other"))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as exc:
            stub.RecommendPath(pb.RecommendPathRequest(learner_id="l0001"), metadata=auth("other"))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        theirs = stub.GetCatalog(pb.GetCatalogRequest(), metadata=auth("other"))
        assert "own-skill" in {s.skill_id for s in theirs.skills}
        ours = stub.GetCatalog(pb.GetCatalogRequest(), metadata=auth())
        assert "own-skill" not in {s.skill_id for s in ours.skills}


def test_the_path_cache_follows_every_change_across_processes(cluster: Cluster) -> None:
    ask = pb.RecommendPathRequest(learner_id="l0004", target_role_id="r")

    def paths(request: pb.RecommendPathRequest = ask) -> list[pb.LearningPath]:
        return [stub.RecommendPath(request, metadata=auth()) for stub in cluster.stubs]

    def fresh(before: list[pb.LearningPath], after: list[pb.LearningPath]) -> bool:
        pairs = zip(before, after, strict=True)
        return all(a.generated_at.ToDatetime() > b.generated_at.ToDatetime() for b, a in pairs)

    planned = paths()
    cached = paths()
    assert [p.generated_at for p in cached] == [p.generated_at for p in planned], "nothing changed: cached"
    assert [list(p.steps) for p in cached] == [list(p.steps) for p in planned]

    cluster.stubs[-1].RecordAssessment(result("cache-1", "l0004", 0.0), metadata=auth())
    after_result = paths()
    assert fresh(cached, after_result), "new evidence, written by one process, re-plans in every process"
    assert [p.generated_at for p in paths()] == [p.generated_at for p in after_result]

    other_options = paths(pb.RecommendPathRequest(learner_id="l0004", target_role_id="r", max_steps=3))
    assert all(len(p.steps) <= 3 for p in other_options)
    assert [p.generated_at for p in paths()] == [p.generated_at for p in after_result], "options are keyed apart"

    current = cluster.stubs[0].ListModels(pb.ListModelsRequest(), metadata=auth()).active_version
    other = next(v for v in cluster.versions if v != current)
    cluster.stubs[0].ActivateModel(pb.ActivateModelRequest(version=other), metadata=auth())
    after_model = paths()
    assert fresh(after_result, after_model) and {p.model_version for p in after_model} == {other}

    catalog = cluster.stubs[0].GetCatalog(pb.GetCatalogRequest(), metadata=auth())
    cluster.stubs[-1].UpsertCatalog(pb.UpsertCatalogRequest(skills=catalog.skills[:1]), metadata=auth())
    assert fresh(after_model, paths()), "a catalog revision re-plans in every process"

    learner = cluster.stubs[0].GetLearner(pb.GetLearnerRequest(learner_id="l0004"), metadata=auth())
    before_upsert = paths()
    learner.weekly_minutes = learner.weekly_minutes + 60
    cluster.stubs[-1].UpsertLearner(pb.UpsertLearnerRequest(learner=learner), metadata=auth())
    assert fresh(before_upsert, paths()), "a change to the learner re-plans"
