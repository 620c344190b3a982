"""Paths shared by every server process through the store, and planned ahead after a new result
(decision 15). Two Apps on one store stand for two server processes, each with its own hand-moved
clock, so a path's generated_at tells which process planned it and when. On both stores.
A real two-process server: tests/test_processes.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from recommender.api import mapping
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.servicer import PathMessages
from recommender.domain.assessment import AssessmentEvent
from recommender.domain.catalog import Skill
from recommender.domain.learner import Learner
from recommender.errors import NotFound
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.service.recommend import PathRequest
from recommender.storage import schema as t
from recommender.storage.sql import SqlStore
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0, make_settings, tiny_catalog

ASK = PathRequest("ana")


@dataclass
class Process:
    app: App
    clock: ManualClock
    form: PathMessages

    def path(self, request: PathRequest = ASK) -> pb.LearningPath:
        return self.app.paths.serve(DEFAULT_TENANT, request, self.form)

    def planned_at(self, request: PathRequest = ASK) -> datetime:
        return self.path(request).generated_at.ToDatetime().replace(tzinfo=T0.tzinfo)

    def settle(self) -> None:
        assert self.app.paths.ahead.wait_idle(), "planning ahead and storing paths finished"


@pytest.fixture
def two(store_url: str, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    """Process a at T0, process b a minute later, on one store; neither polls for the other's
    results (processes=1), so each plans ahead only for results it records."""
    made = []
    try:
        for offset in (0, 1):
            clock = ManualClock(T0 + timedelta(minutes=offset))
            app = build_app(make_settings(store_url, tmp_path, processes=1), clock=clock)
            made.append(Process(app, clock, PathMessages()))
        made[0].app.catalogs.upsert(*tiny_catalog(), replace=True)
        made[0].app.learners.upsert(DEFAULT_TENANT, ana())
        yield made[0], made[1]
    finally:
        for p in made:
            p.app.close()


def ana(**change: object) -> Learner:
    return replace(Learner("ana", languages=("en",), target_role_id="welder"), **change)  # type: ignore[arg-type]


def result(event_id: str, score: float) -> AssessmentEvent:
    return AssessmentEvent(event_id, "ana", "safety-101", score, T0 - timedelta(hours=1))


def advance(*processes: Process, minutes: float = 1) -> None:
    for p in processes:
        p.clock.advance(minutes=minutes)


def test_a_path_planned_in_one_process_is_served_by_another(two: tuple[Process, Process]) -> None:
    a, b = two
    planned = a.path()
    a.settle()
    served = b.path()
    assert served == planned and b.planned_at() == T0, "planned by a (at T0), not again by b"
    advance(a, b)
    assert a.path() is planned and b.path() is served, "nothing changed: each serves its cached message"


def test_a_new_result_is_planned_ahead_and_every_process_serves_it(
    two: tuple[Process, Process], store_url: str, tmp_path: Path
) -> None:
    a, b = two
    before = a.path()
    a.settle()
    b.path()
    advance(a, b, minutes=2)
    b.app.learners.record(DEFAULT_TENANT, result("e1", 0.0))  # b served ana a path: b plans her next one
    b.settle()
    after = a.path()
    assert a.planned_at() == b.clock(), "a serves the path b planned ahead when the result came in"
    assert b.planned_at() == b.clock() and b.path() == after

    # what a process with no cache plans from the store at that time: the result is in it
    fresh = build_app(make_settings(store_url, tmp_path, path_cache_size=0), clock=ManualClock(b.clock()))
    try:
        from_scratch = mapping.path_to_proto(fresh.paths.recommend(DEFAULT_TENANT, ASK), mapping.ReasonMessages())
    finally:
        fresh.close()
    assert after == from_scratch and after != before, "the path is the one the result leads to"


def test_a_path_is_planned_ahead_once_per_page_view(two: tuple[Process, Process]) -> None:
    a, _ = two
    a.path()
    advance(a)
    a.app.learners.record(DEFAULT_TENANT, result("e1", 0.0))
    a.settle()
    ahead = a.app.paths.cache.get((DEFAULT_TENANT, ASK, a.form.name), serving=False)
    assert ahead is not None and ahead.generated_at == a.clock(), "planned ahead after the result"
    advance(a)
    a.app.learners.record(DEFAULT_TENANT, result("e2", 1.0))  # no page view since: not planned again
    a.settle()
    assert a.app.paths.cache.get((DEFAULT_TENANT, ASK, a.form.name), serving=False) is ahead
    assert a.planned_at() == a.clock(), "the page view plans what changed since"
    advance(a)
    a.app.learners.record(DEFAULT_TENANT, result("e3", 1.0))  # after a page view: planned ahead again
    a.settle()
    advance(a)
    assert a.planned_at() == a.clock() - timedelta(minutes=1)


def test_every_change_a_path_depends_on_replans_in_the_other_process(
    two: tuple[Process, Process], store_url: str
) -> None:
    a, b = two
    a.path()
    a.settle()
    b.path()

    advance(a, b)
    b.app.learners.record(DEFAULT_TENANT, result("e1", 1.0))
    b.settle()
    assert a.planned_at() == b.clock(), "evidence: planned again (by b, ahead)"

    advance(a, b)
    b.app.learners.upsert(DEFAULT_TENANT, ana(weekly_minutes=90))
    assert a.planned_at() == a.clock(), "the learner's row: planned again"
    a.settle()
    assert b.planned_at() == a.clock(), "and shared"

    advance(a, b)
    b.app.catalogs.upsert([Skill("extra", {"en": "Extra"}, "manufacturing")], [], [], replace=False)
    assert a.planned_at() == a.clock(), "a catalog revision: planned again"
    assert b.planned_at() == a.clock() or b.planned_at() == b.clock()

    advance(a, b)
    shorter = PathRequest("ana", max_steps=1)
    assert a.planned_at(shorter) == a.clock() and len(a.path(shorter).steps) <= 1, "other options: their own path"
    assert a.planned_at() < a.clock(), "the first request's path is still served"

    b.app.learners.delete(DEFAULT_TENANT, "ana")
    store = a.app.store
    assert isinstance(store, SqlStore)
    with store.engine.connect() as c:
        left = c.execute(sa.select(sa.func.count()).select_from(t.shared_paths)).scalar_one()
    assert left == 0, "an erasure erases the learner's stored paths"
    with pytest.raises(NotFound):
        a.path()
    advance(a, b)
    b.app.learners.upsert(DEFAULT_TENANT, ana())
    assert a.planned_at() == a.clock(), "a learner created again is planned afresh"


def test_a_stored_path_is_not_served_once_too_old(two: tuple[Process, Process]) -> None:
    a, b = two
    a.path()
    a.settle()
    b.clock.advance(seconds=b.app.settings.path_cache_seconds)  # b is a minute ahead: now past the age
    assert b.planned_at() == b.clock(), "too old to serve: planned again"


def test_without_sharing_each_process_plans_its_own(store_url: str, tmp_path: Path) -> None:
    apps = [
        build_app(
            make_settings(store_url, tmp_path, path_cache_shared=False), clock=ManualClock(T0 + timedelta(minutes=k))
        )
        for k in (0, 1)
    ]
    try:
        apps[0].catalogs.upsert(*tiny_catalog(), replace=True)
        apps[0].learners.upsert(DEFAULT_TENANT, ana())
        paths = [app.paths.serve(DEFAULT_TENANT, ASK, PathMessages()) for app in apps]
        apps[0].paths.ahead.wait_idle()
        assert [p.generated_at.ToDatetime() for p in paths] == [
            T0.replace(tzinfo=None) + timedelta(minutes=k) for k in (0, 1)
        ]
    finally:
        for app in apps:
            app.close()


def _wait_for_plan_ahead(polling: App, a: Process, clock: ManualClock) -> None:
    """Until the poller's next rounds (every few milliseconds) have planned a's path at `clock()`."""
    key = (DEFAULT_TENANT, ASK, a.form.name)
    for _ in range(1000):
        entry = polling.paths.cache.get(key)
        if entry is not None and entry.generated_at == clock():
            return
        time.sleep(0.01)


def test_a_process_plans_ahead_for_results_another_process_recorded(store_url: str, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    settings = make_settings(store_url, tmp_path, processes=2, path_plan_ahead_poll_seconds=0.02)
    polling = build_app(settings, clock=clock)
    other = build_app(make_settings(store_url, tmp_path, processes=1), clock=ManualClock(T0))
    try:
        polling.catalogs.upsert(*tiny_catalog(), replace=True)
        polling.learners.upsert(DEFAULT_TENANT, ana())
        a = Process(polling, clock, PathMessages())
        before = a.path()
        a.settle()
        clock.advance(minutes=1)
        other.learners.record(DEFAULT_TENANT, result("e1", 0.0))  # other never served ana: no plan ahead there
        _wait_for_plan_ahead(polling, a, clock)
        clock.advance(minutes=1)
        assert a.planned_at() == clock() - timedelta(minutes=1), "planned ahead when the result was polled"
        assert a.path() != before
    finally:
        polling.close()
        other.close()


def test_storing_paths_leaves_every_connection_syncing_its_commits(two: tuple[Process, Process]) -> None:
    """Stored paths are a cache, committed without a sync; every other write still syncs: no
    connection goes back to the pool with syncing off."""
    a, b = two
    store = a.app.store
    assert isinstance(store, SqlStore)
    seen: list[str] = []

    def on_checkin(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        try:
            cursor.execute("PRAGMA synchronous" if store.dialect == "sqlite" else "SHOW synchronous_commit")
            seen.append(str(cursor.fetchone()[0]))
        finally:
            cursor.close()

    sa.event.listen(store.engine, "checkin", on_checkin)
    try:
        planned = a.path()
        a.settle()  # the path is stored for the other processes
        assert b.path() == planned and b.planned_at() == T0, "the stored path is served by the other process"
        a.app.learners.upsert(DEFAULT_TENANT, ana(cohort_id="c2"))
    finally:
        sa.event.remove(store.engine, "checkin", on_checkin)
    assert seen and set(seen) == ({"2"} if store.dialect == "sqlite" else {"on"})


def test_a_process_serving_only_stored_paths_still_polls_for_results(store_url: str, tmp_path: Path) -> None:
    """A process that never planned a path itself (it served what another stored) plans ahead
    for results another process records: its poller starts with the first call, not the first plan."""
    clock = ManualClock(T0)
    polling = build_app(make_settings(store_url, tmp_path, processes=2, path_plan_ahead_poll_seconds=0.02), clock=clock)
    other = build_app(make_settings(store_url, tmp_path, processes=1, path_plan_ahead=False), clock=clock)
    try:
        other.catalogs.upsert(*tiny_catalog(), replace=True)
        other.learners.upsert(DEFAULT_TENANT, ana())
        a, b = Process(polling, clock, PathMessages()), Process(other, clock, PathMessages())
        b.path()
        b.settle()
        a.path()  # the path b stored
        clock.advance(minutes=1)
        other.learners.record(DEFAULT_TENANT, result("e1", 0.0))  # b does not plan ahead
        _wait_for_plan_ahead(polling, a, clock)
        clock.advance(minutes=1)
        assert a.planned_at() == clock() - timedelta(minutes=1), "planned ahead when the result was polled"
    finally:
        polling.close()
        other.close()
