"""Production hardening against a real server: tenants and auth, TLS, metrics, logs, limits,
and a fuzz test that throws malformed requests at it."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.api import mapping
from recommender.api.grpc_server import RunningServer, create_server
from recommender.api.interceptors import REQUEST_ID, JsonFormatter
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from tests.api.conftest import Served
from tests.api.test_core_rpcs import ana, code_of, load_tiny, result
from tests.conftest import T0, make_settings, tiny_catalog

TOKENS = [
    {"token": "platform-a-0123456789", "tenant": "college-a", "roles": ["platform"]},
    {"token": "admin-a-0123456789ab", "tenant": "college-a", "roles": ["admin", "ml"]},
    {"token": "platform-b-0123456789", "tenant": "college-b", "roles": ["platform", "admin"]},
]


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def secured(
    tmp_path: Path, sqlite_url: str, clock: ManualClock
) -> Iterator[tuple[RunningServer, pb_grpc.LearningPathServiceStub]]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    app = build_app(make_settings(sqlite_url, tmp_path, auth_tokens_file=tokens, metrics_address="127.0.0.1:0"), clock)
    running = create_server(app, "127.0.0.1:0")
    running.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running, pb_grpc.LearningPathServiceStub(channel)
    finally:
        channel.close()
        running.stop(0)
        app.close()


def test_tokens_roles_and_tenant_isolation(secured: tuple[RunningServer, pb_grpc.LearningPathServiceStub]) -> None:
    _, stub = secured
    skills, modules, roles = tiny_catalog()
    catalog = pb.UpsertCatalogRequest(skills=mapping.skills_to_proto(skills), modules=mapping.modules_to_proto(modules),
                                      roles=mapping.roles_to_proto(roles))  # fmt: skip
    with pytest.raises(grpc.RpcError) as exc:
        stub.UpsertCatalog(catalog)
    assert code_of(exc.value) == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as exc:
        stub.UpsertCatalog(catalog, metadata=bearer("not-a-real-token-at-all"))
    assert code_of(exc.value) == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as exc:
        stub.UpsertCatalog(catalog, metadata=bearer(TOKENS[0]["token"]))  # type: ignore[arg-type]
    assert code_of(exc.value) == grpc.StatusCode.PERMISSION_DENIED
    stub.UpsertCatalog(catalog, metadata=bearer(TOKENS[1]["token"]))  # type: ignore[arg-type]
    stub.UpsertCatalog(catalog, metadata=bearer(TOKENS[2]["token"]))  # type: ignore[arg-type]  # each its own
    a, b = bearer(TOKENS[0]["token"]), bearer(TOKENS[2]["token"])  # type: ignore[arg-type]
    stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()), metadata=a)
    stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e1")), metadata=a)
    for call in (
        lambda: stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"), metadata=b),
        lambda: stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"), metadata=b),
        lambda: stub.RecordAssessment(pb.RecordAssessmentRequest(result=result("e2")), metadata=b),
        lambda: stub.RecommendPath(pb.RecommendPathRequest(learner_id="ana"), metadata=b),
    ):
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert code_of(exc.value) == grpc.StatusCode.NOT_FOUND, "another tenant's learner does not exist"
    gone = stub.DeleteLearner(pb.DeleteLearnerRequest(learner_id="ana"), metadata=b)
    assert not gone.deleted
    assert stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"), metadata=a).learner_id == "ana"
    stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()), metadata=b)  # same id, other tenant: separate
    assert len(stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"), metadata=b).skills) == 0
    assert len(stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"), metadata=a).skills) == 1
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListModels(pb.ListModelsRequest(), metadata=a)
    assert code_of(exc.value) == grpc.StatusCode.PERMISSION_DENIED


def test_metrics_endpoint(secured: tuple[RunningServer, pb_grpc.LearningPathServiceStub]) -> None:
    running, stub = secured
    with pytest.raises(grpc.RpcError):
        stub.GetCatalog(pb.GetCatalogRequest())
    stub.GetCatalog(pb.GetCatalogRequest(), metadata=bearer(TOKENS[0]["token"]))  # type: ignore[arg-type]
    body = urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=5).read().decode()
    assert 'luban_rpc_total{code="UNAUTHENTICATED",method="GetCatalog"} 1.0' in body
    assert 'luban_rpc_total{code="OK",method="GetCatalog"} 1.0' in body
    assert "luban_rpc_seconds_bucket" in body and "luban_rpc_in_flight" in body
    assert "# TYPE luban_active_model_info gauge" in body and "luban_training_jobs" in body  # no tenant's model yet
    assert "luban_store_errors_total" in body


def test_request_id_in_trailers_and_json_logs(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recommender.access")
    call = served.stub.GetCatalog.with_call(pb.GetCatalogRequest(), metadata=(("x-request-id", "req-42"),))
    trailers = dict(call[1].trailing_metadata())
    assert trailers["x-request-id"] == "req-42"
    record = next(r for r in caplog.records if getattr(r, "rpc", {}).get("method") == "GetCatalog")
    token = REQUEST_ID.set("req-42")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["method"] == "GetCatalog" and line["code"] == "OK" and line["request_id"] == "req-42"
    assert "attributes" not in json.dumps(line)


class FormattedLines(logging.Handler):
    """Access lines as the server's JSON formatter writes them, formatted where the call logs them
    (the request id is the serving thread's)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_a_request_id_stays_with_its_call(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recommender.access")
    access = logging.getLogger("recommender.access")
    lines = FormattedLines()
    access.addHandler(lines)
    try:
        served.stub.GetCatalog(pb.GetCatalogRequest(), metadata=(("x-request-id", "req-7"),))
        for _ in range(10):  # handler threads are reused: these run where req-7 ran
            served.stub.GetCatalog(pb.GetCatalogRequest())
    finally:
        access.removeHandler(lines)
    assert [line.get("request_id") for line in lines.lines] == ["req-7"] + [None] * 10
    assert all(line["method"] == "GetCatalog" and line["code"] == "OK" for line in lines.lines)
    assert caplog.text.count("recommender.access") == 11, "plain formatters read access records too"


def test_in_flight_counts_the_calls_being_served(served: Served) -> None:
    load_tiny(served)
    registry = served.running.metrics.registry
    release = threading.Event()

    def held() -> Iterator[pb.RecordAssessmentsRequest]:
        release.wait(30)  # a client stream that sends nothing until released: in flight meanwhile
        return
        yield

    stream = served.stub.RecordAssessments.future(held(), timeout=30)
    try:
        for _ in range(200):
            if registry.get_sample_value("luban_rpc_in_flight") == 1:
                break
            threading.Event().wait(0.02)
        assert registry.get_sample_value("luban_rpc_in_flight") == 1
    finally:
        release.set()
    stream.result()
    assert registry.get_sample_value("luban_rpc_in_flight") == 0


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_tls_and_client_certificates(tmp_path: Path, sqlite_url: str, clock: ManualClock) -> None:
    d = tmp_path
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", "san.cnf", cwd=d)  # fmt: skip
    app = build_app(make_settings(sqlite_url, tmp_path, tls_cert_file=d / "server.pem", tls_key_file=d / "server.key",
                                  tls_client_ca_file=d / "ca.pem"), clock)  # fmt: skip
    running = create_server(app, "127.0.0.1:0")
    running.start()
    try:
        ca = (d / "ca.pem").read_bytes()
        good = grpc.ssl_channel_credentials(ca, (d / "client.key").read_bytes(), (d / "client.pem").read_bytes())
        with grpc.secure_channel(f"localhost:{running.port}", good) as channel:
            assert pb_grpc.LearningPathServiceStub(channel).GetCatalog(pb.GetCatalogRequest(), timeout=10).revision == 0
        anonymous = grpc.ssl_channel_credentials(ca)
        with grpc.secure_channel(f"localhost:{running.port}", anonymous) as channel:
            with pytest.raises(grpc.RpcError) as exc:
                pb_grpc.LearningPathServiceStub(channel).GetCatalog(pb.GetCatalogRequest(), timeout=10)
            assert code_of(exc.value) == grpc.StatusCode.UNAVAILABLE, "no client certificate, no connection"
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, pytest.raises(grpc.RpcError):
            pb_grpc.LearningPathServiceStub(channel).GetCatalog(pb.GetCatalogRequest(), timeout=5)
    finally:
        running.stop(0)
        app.close()


def test_overload_is_resource_exhausted(tmp_path: Path, sqlite_url: str, clock: ManualClock) -> None:
    app = build_app(make_settings(sqlite_url, tmp_path, max_workers=1), clock)
    app.catalogs.upsert(*tiny_catalog(), replace=True)
    running = create_server(app, "127.0.0.1:0")
    running.start()
    codes: list[grpc.StatusCode] = []
    lock = threading.Lock()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.LearningPathServiceStub(channel)
            learners = [pb.Learner(learner_id=f"o{i}", languages=["en"], target_role_id="welder") for i in range(300)]

            def call() -> None:
                try:
                    list(stub.GeneratePaths(pb.GeneratePathsRequest(learners=learners), timeout=60))
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                with lock:
                    codes.append(code)

            threads = [threading.Thread(target=call) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        running.stop(0)
        app.close()
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}


# fuzzing ---------------------------------------------------------------------------------------
text = st.one_of(
    st.text(max_size=40),
    st.text(min_size=200, max_size=3000),
    st.sampled_from(["ana", "welding-101", "welder", "", "\x00", "é" * 300]),
)
number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, -1.0, 1e308, math.nan]))
small_int = st.integers(-(2**31), 2**31 - 1)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, object]:
    kind = draw(st.sampled_from(["record", "learner", "path", "profile", "catalog", "bulk", "generate"]))
    res = pb.AssessmentResult(
        event_id=draw(text), learner_id=draw(st.sampled_from(["ana", draw(text)])),
        module_id=draw(st.sampled_from(["welding-101", draw(text)])), score=draw(number),
        skill_ids=draw(st.lists(text, max_size=3)), duration_seconds=draw(number),
    )  # fmt: skip
    if draw(st.booleans()):
        res.occurred_at.seconds = draw(st.integers(-(2**40), 2**40))
        res.occurred_at.nanos = draw(st.integers(0, 999_999_999))
    learner = pb.Learner(learner_id=draw(text), country=draw(text), languages=draw(st.lists(text, max_size=3)),
                         chinese_level=draw(small_int), weekly_minutes=draw(small_int),
                         target_role_id=draw(st.sampled_from(["welder", draw(text)])),
                         attributes=draw(st.dictionaries(text, text, max_size=3)))  # fmt: skip
    if kind == "record":
        return kind, pb.RecordAssessmentRequest(result=res)
    if kind == "learner":
        return kind, pb.UpsertLearnerRequest(learner=learner)
    if kind == "path":
        return kind, pb.RecommendPathRequest(
            learner_id=draw(st.sampled_from(["ana", draw(text)])), max_steps=draw(small_int),
            languages=draw(st.lists(text, max_size=2)), time_budget_minutes=draw(small_int),
            exclude_module_ids=draw(st.lists(text, max_size=2)), locale=draw(text),
        )  # fmt: skip
    if kind == "profile":
        return kind, pb.GetSkillProfileRequest(learner_id=draw(text))
    if kind == "bulk":
        return kind, pb.RecordAssessmentsRequest(results=[res, res])
    if kind == "generate":
        return kind, pb.GeneratePathsRequest(learners=[learner], max_steps=draw(small_int), locale=draw(text))
    return kind, pb.UpsertCatalogRequest(
        modules=[pb.Module(module_id=draw(text), skills=[pb.SkillWeight(skill_id=draw(text), weight=draw(number))],
                           difficulty=draw(number), languages=draw(st.lists(text, max_size=2)),
                           prerequisite_module_ids=draw(st.lists(text, max_size=2)),
                           estimated_minutes=draw(small_int), min_chinese_level=draw(small_int))],
        roles=[pb.TargetRole(role_id=draw(text), requirements=[pb.SkillRequirement(skill_id=draw(text),
                             level=draw(number), weight=draw(number))], shortage_index=draw(number))],
    )  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(requests())
def test_fuzzed_requests_never_break_the_server(
    fuzz_server: tuple[Served, dict[str, int]], request: tuple[str, object]
) -> None:
    served, _ = fuzz_server
    kind, message = request
    app = served.app
    before = (app.store.count_events(), app.store.count_learners(), app.catalogs.current().revision)
    stub = served.stub
    call = {
        "record": lambda m: stub.RecordAssessment(m, timeout=10),
        "learner": lambda m: stub.UpsertLearner(m, timeout=10),
        "path": lambda m: stub.RecommendPath(m, timeout=10),
        "profile": lambda m: stub.GetSkillProfile(m, timeout=10),
        "catalog": lambda m: stub.UpsertCatalog(m, timeout=10),
        "bulk": lambda m: stub.RecordAssessments(iter([m]), timeout=10),
        "generate": lambda m: list(stub.GeneratePaths(m, timeout=10)),
    }[kind]
    code = grpc.StatusCode.OK
    try:
        call(message)  # type: ignore[no-untyped-call]
    except grpc.RpcError as exc:
        code = exc.code()
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    if code != grpc.StatusCode.OK:
        after = (app.store.count_events(), app.store.count_learners(), app.catalogs.current().revision)
        assert after == before, "a rejected call changes nothing"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, int]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    app: App = build_app(make_settings(f"sqlite:///{tmp / 'f.db'}", tmp), ManualClock(T0))
    app.catalogs.upsert(*tiny_catalog(), replace=True)
    running = create_server(app, "127.0.0.1:0")
    running.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    served = Served(running, channel, pb_grpc.LearningPathServiceStub(channel), app)
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    yield served, {}
    channel.close()
    running.stop(0)
    app.close()
