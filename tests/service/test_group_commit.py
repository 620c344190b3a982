"""Group commit: concurrent single results share transactions, each caller gets its own outcome,
and nothing is acknowledged before it is committed. Real stores (SQLite file, PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.learner import Learner
from recommender.errors import AlreadyExists, LubanError, NotFound
from recommender.service.app import App
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0


def result(event_id: str, learner: str = "ana", score: float = 1.0) -> AssessmentEvent:
    return AssessmentEvent(event_id, learner, "safety-101", score, T0 - timedelta(minutes=1))


def event_inserts_of(app: App) -> list[int]:
    """Counts INSERTs into the events table: one per write transaction that stores results."""
    count = [0]

    def before_execute(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        count[0] += statement.lstrip().upper().startswith("INSERT INTO EVENTS")

    sa.event.listen(app.store.engine, "before_cursor_execute", before_execute)  # type: ignore[attr-defined]
    return count


@contextmanager
def writers_blocked(app: App) -> Iterator[None]:
    """Another connection holds the learner's write lock until the block ends."""
    engine = sa.create_engine(app.store.engine.url)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("SELECT 1 FROM learners WHERE learner_id = 'ana' FOR UPDATE")
        try:
            yield
        finally:
            conn.exec_driver_sql("ROLLBACK")
    engine.dispose()


def test_concurrent_results_share_commits_and_each_gets_its_outcome(tiny_app: App) -> None:
    app = tiny_app
    app.learners.upsert(DEFAULT_TENANT, Learner("ana", languages=("en",)))
    app.learners.record(DEFAULT_TENANT, result("warm-up"))  # the writer thread is running
    commits = event_inserts_of(app)
    outcomes: dict[str, object] = {}

    def call(event: AssessmentEvent) -> None:
        try:
            outcomes[event.event_id] = app.learners.record(DEFAULT_TENANT, event)[1]
        except LubanError as exc:
            outcomes[event.event_id] = type(exc)

    calls = [result(f"e{i}", score=float(i % 2)) for i in range(12)]
    calls += [result("warm-up"), result("warm-up", score=0.0), result("x", learner="nobody")]
    with writers_blocked(app):
        threads = [threading.Thread(target=call, args=(e,)) for e in calls]
        for th in threads:
            th.start()
        time.sleep(0.5)  # every caller has queued; the first commit waits for the lock
        assert outcomes == {}, "nothing is acknowledged before it is committed"
    for th in threads:
        th.join(timeout=60)
    assert {f"e{i}": False for i in range(12)}.items() <= outcomes.items()
    assert outcomes["warm-up"] in (True, AlreadyExists)  # a replay, or a different payload
    assert outcomes["x"] is NotFound
    assert commits[0] <= 3, f"{len(calls)} results committed in {commits[0]} transactions"
    profile = app.learners.profile(DEFAULT_TENANT, "ana")
    assert {s.skill_id: s.attempts for s in profile.skills} == {"safety": 13}


def test_close_commits_what_is_queued_then_refuses(tiny_app: App) -> None:
    app = tiny_app
    app.learners.upsert(DEFAULT_TENANT, Learner("ana", languages=("en",)))
    app.learners.record(DEFAULT_TENANT, result("e0"))
    app.learners.close()
    with pytest.raises(LubanError, match="shutting down"):
        app.learners.record(DEFAULT_TENANT, result("e1"))
    assert [e.event_id for e in app.store.events_of(DEFAULT_TENANT, "ana")] == ["e0"]
