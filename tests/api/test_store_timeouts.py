"""Issue #22, defect 4: a stuck PostgreSQL answers UNAVAILABLE in bounded time, and a call's own
deadline bounds the database work done for it. "Stuck" here is a lock another session holds: the
database runs, but every statement on the learners table waits."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.service.app import build_app
from recommender.service.clock import ManualClock
from tests.api.conftest import Served, serving
from tests.api.test_core_rpcs import ana, load_tiny
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def serve(postgres_url: str, tmp_path: Path, clock: ManualClock, timeout: float) -> Iterator[Served]:
    app = build_app(make_settings(postgres_url, tmp_path, store_timeout_seconds=timeout), clock=clock)
    try:
        with serving(app) as server:
            yield server
    finally:
        app.close()


@pytest.fixture
def short_timeout(postgres_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Served]:
    yield from serve(postgres_url, tmp_path, clock, timeout=1.0)


@pytest.fixture
def long_timeout(postgres_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Served]:
    yield from serve(postgres_url, tmp_path, clock, timeout=120.0)


@pytest.fixture
def locked(postgres_url: str) -> Iterator[tuple[sa.Connection, int]]:
    """A session holding an exclusive lock on the learners table (released at the end), and its pid."""
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        yield conn, pid
        conn.exec_driver_sql("ROLLBACK")
    engine.dispose()


def take_lock(conn: sa.Connection) -> None:
    conn.exec_driver_sql("LOCK TABLE learners IN ACCESS EXCLUSIVE MODE")


def test_a_stuck_database_answers_unavailable_while_the_caller_waits(
    short_timeout: Served, locked: tuple[sa.Connection, int]
) -> None:
    load_tiny(short_timeout)
    short_timeout.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    take_lock(locked[0])
    stub = short_timeout.stub
    with pytest.raises(grpc.RpcError) as exc:
        stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"), timeout=60)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        stub.GetSkillProfile(pb.GetSkillProfileRequest(learner_id="ana"), timeout=60)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()), timeout=60)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, exc.value.details()


def test_the_database_gives_up_when_the_call_does(
    long_timeout: Served, locked: tuple[sa.Connection, int], postgres_url: str
) -> None:
    load_tiny(long_timeout)
    long_timeout.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
    conn, holder = locked
    take_lock(conn)
    with pytest.raises(grpc.RpcError) as exc:
        long_timeout.stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"), timeout=1.0)
    # the statement's timeout is the time the call had left when the server read it, so the server
    # may answer UNAVAILABLE (statement timeout) a moment before the caller's own deadline fires
    assert exc.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE), exc.value.details()
    # while the lock is still held, nothing of ours waits for it any more
    observer = sa.create_engine(postgres_url)
    try:
        waiting = -1
        for _ in range(300):
            with observer.connect() as c:
                waiting = int(
                    c.exec_driver_sql(
                        f"SELECT count(*) FROM pg_stat_activity WHERE {holder} = ANY(pg_blocking_pids(pid))"
                    ).scalar_one()
                )
            if waiting == 0:
                break
            time.sleep(0.1)
        assert waiting == 0, "the server's statement still waits for the lock after the call ended"
    finally:
        observer.dispose()


class FreezingProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding: to the server's clients it looks like a
    server process that no longer runs (SIGSTOP) while its host still acknowledges packets."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._running = threading.Event()
        self._running.set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def close(self) -> None:
        self._closed = True
        self._running.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closed:
                data = source.recv(65536)
                self._running.wait()  # frozen: hold what arrived, forward nothing
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[tuple[FreezingProxy, str]]:
    url = sa.engine.make_url(postgres_url)
    running = FreezingProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield running, url.set(host="127.0.0.1", port=running.port).render_as_string(hide_password=False)
    finally:
        running.close()


def test_a_frozen_database_answers_unavailable_and_the_service_recovers(
    proxy: tuple[FreezingProxy, str], tmp_path: Path, clock: ManualClock
) -> None:
    frozen, url = proxy
    for served in serve(url, tmp_path, clock, timeout=1.0):
        load_tiny(served)
        served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=ana()))
        frozen.freeze()
        try:
            with pytest.raises(grpc.RpcError) as exc:
                served.stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"), timeout=60)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, exc.value.details()
        finally:
            frozen.thaw()
        assert served.stub.GetLearner(pb.GetLearnerRequest(learner_id="ana"), timeout=60).learner_id == "ana"
