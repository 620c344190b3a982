"""Issue #22, defect 4: a stuck PostgreSQL answers UNAVAILABLE in bounded time, and a call's own
deadline bounds the database work done for it. "Stuck" here is a lock another session holds: the
database runs, but every statement on the learners table waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.api.server import create_server
from recommender.service.app import build_app
from recommender.service.clock import ManualClock
from tests.api.conftest import Served
from tests.api.test_core_rpcs import ana, load_tiny
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def serve(postgres_url: str, tmp_path: Path, clock: ManualClock, timeout: float) -> Iterator[Served]:
    app = build_app(make_settings(postgres_url, tmp_path, store_timeout_seconds=timeout), clock=clock)
    running = create_server(app, "127.0.0.1:0")
    running.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Served(running, channel, pb_grpc.LearningPathServiceStub(channel), app)
    finally:
        channel.close()
        running.stop(0)
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
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
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
