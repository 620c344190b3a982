"""Issue #22, defect 3: health checks have capacity of their own. With every handler thread busy
and the queue full, a probe still answers SERVING at once, and a service call beyond capacity is
refused with RESOURCE_EXHAUSTED instead of waiting. Below that capacity a call beyond the handler
threads waits for one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.config import Settings
from recommender.service.app import build_app
from recommender.service.clock import ManualClock
from tests.api.conftest import Served, serving
from tests.api.test_core_rpcs import load_tiny
from tests.conftest import make_settings

WORKERS = 2


@contextmanager
def server_with(tmp_path: Path, sqlite_url: str, clock: ManualClock, **settings: object) -> Iterator[Served]:
    app = build_app(make_settings(sqlite_url, tmp_path, **settings), clock=clock)
    try:
        with serving(app) as server:
            yield server
    finally:
        app.close()


@pytest.fixture
def tiny_server(tmp_path: Path, sqlite_url: str, clock: ManualClock) -> Iterator[Served]:
    with server_with(tmp_path, sqlite_url, clock, max_workers=WORKERS) as server:
        yield server


def test_health_answers_while_every_handler_is_busy(tiny_server: Served) -> None:
    load_tiny(tiny_server)
    health = health_pb2_grpc.HealthStub(tiny_server.channel)
    request = health_pb2.HealthCheckRequest(service="luban.path.v1.LearningPathService")
    while health.Check(request, timeout=5).status != health_pb2.HealthCheckResponse.SERVING:
        pass
    release = threading.Event()

    def held() -> Iterator[pb.RecordAssessmentsRequest]:
        release.wait(60)  # a client stream that sends nothing until released: it holds its handler
        return
        yield

    # enough open streams to occupy every handler thread and fill the queue (8 per thread)
    streams = [tiny_server.stub.RecordAssessments.future(held(), timeout=60) for _ in range(WORKERS * 9 + 4)]
    try:
        refused = None
        for _ in range(200):  # the calls arrive at the server asynchronously
            try:
                tiny_server.stub.GetCatalog(pb.GetCatalogRequest(), timeout=0.5)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused = exc
                    break
        assert refused is not None, "a service call beyond capacity is refused, not queued without bound"
        for _ in range(20):
            assert health.Check(request, timeout=2).status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(request, timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    finally:
        release.set()
    outcomes = [s.exception() for s in streams]  # each stream's own 60 s deadline bounds the wait
    accepted = [s for s, e in zip(streams, outcomes, strict=True) if e is None]
    assert accepted, "the calls that were admitted finish normally"
    assert all(e is None or e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in outcomes)  # type: ignore[attr-defined]


@pytest.fixture
def default_server(
    tmp_path: Path, sqlite_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    monkeypatch.delenv("LUBAN_MAX_WORKERS", raising=False)  # the default, whatever the caller's environment
    with server_with(tmp_path, sqlite_url, clock) as server:
        yield server


def test_by_default_eight_service_calls_run_at_once_and_the_next_waits(default_server: Served) -> None:
    """LUBAN_MAX_WORKERS defaults to 8 handler threads a process (decision 26): eight service calls
    run at once, a ninth waits in the queue, neither refused nor run, until one of them ends."""
    threads = Settings.model_fields["max_workers"].default
    assert threads == 8, "the documented default"
    assert default_server.app.settings.max_workers == threads
    load_tiny(default_server)
    registry = default_server.running.metrics.registry

    def running() -> float:
        return registry.get_sample_value("luban_rpc_in_flight") or 0.0

    releases = [threading.Event() for _ in range(threads)]

    def held(release: threading.Event) -> Iterator[pb.RecordAssessmentsRequest]:
        release.wait(60)  # a client stream that sends nothing until released: it holds its handler
        return
        yield

    streams = [default_server.stub.RecordAssessments.future(held(r), timeout=60) for r in releases]
    try:
        for _ in range(500):  # the calls arrive at the server asynchronously
            if running() == threads:
                break
            time.sleep(0.02)
        assert running() == threads, "every handler thread holds a stream"
        ninth = default_server.stub.GetCatalog.future(pb.GetCatalogRequest(), timeout=60)
        time.sleep(0.5)
        assert not ninth.done() and running() == threads, "the ninth call waits for a handler thread"
        releases[0].set()
        assert ninth.result(timeout=30).modules, "it runs once a thread is free"
    finally:
        for r in releases:
            r.set()
    assert all(s.exception() is None for s in streams)  # each stream's own 60 s deadline bounds the wait
