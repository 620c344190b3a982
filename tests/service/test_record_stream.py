"""Streaming ingest (LearnerService.record_stream): batches validated ahead of a writer thread that
takes several into one transaction give each batch the result record_batch gives it, in order;
a failure is raised when its batch's result is due. Real stores (SQLite file, PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.learner import Learner
from recommender.errors import LubanError
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.service.learners import IngestResult
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0, make_settings, tiny_catalog
from tests.service.test_group_commit import writers_blocked

LEARNERS = ("ana", "bob", "chen")


def batch(k: int) -> list[AssessmentEvent]:
    """Results over three learners and two modules; some repeat an earlier batch's event id, the
    same (a duplicate) or not (a conflict), and some name a learner nobody registered."""
    out = []
    for i in range(7):
        eid = f"e{k}-{i}"
        if i == 5 and k > 0:
            eid = f"e{k - 1}-{i}"  # the previous batch's, the same payload: a duplicate
        score = ((k + i) % 3) / 2
        if i == 6 and k > 0:
            eid, score = f"e{k - 1}-0", 0.25  # the previous batch's first id, another payload: a conflict
        learner = "ghost" if (k, i) == (3, 2) else LEARNERS[(k + i) % 3]
        module = "welding-301" if i % 2 else "safety-101"
        at = T0 - timedelta(hours=3) + timedelta(minutes=10 * k + i)
        out.append(AssessmentEvent(eid, learner, module, score, at))
    return out


def given(events: list[AssessmentEvent]) -> Callable[[], list[AssessmentEvent]]:
    return lambda: events


def summary(results: Sequence[IngestResult]) -> list[tuple[int, int, list[tuple[int, str, str]]]]:
    return [
        (r.accepted, r.duplicates, [(x.index, x.event_id, type(x.error).__name__) for x in r.rejected]) for r in results
    ]


def registered(app: App) -> App:
    for learner in LEARNERS:
        app.learners.upsert(DEFAULT_TENANT, Learner(learner, languages=("en",)))
    return app


@pytest.fixture
def reference(tmp_path: Path, clock: ManualClock) -> Iterator[App]:
    """Another store, written one batch at a time with record_batch."""
    app = build_app(make_settings(f"sqlite:///{tmp_path / 'reference.db'}", tmp_path / "ref"), clock=clock)
    app.catalogs.upsert(*tiny_catalog(), replace=True)
    yield registered(app)
    app.close()


def test_a_stream_gives_each_batch_what_record_batch_gives_it(tiny_app: App, reference: App) -> None:
    app = registered(tiny_app)
    batches = [batch(k) for k in range(12)]
    expected = [reference.learners.record_batch(DEFAULT_TENANT, b) for b in batches]
    read_all = threading.Event()
    with writers_blocked(app):  # the writer waits, so the batches validated meanwhile share its next transactions

        def stream() -> Iterator[Callable[[], list[AssessmentEvent]]]:
            yield from map(given, batches)
            read_all.set()

        results: list[IngestResult] = []
        consumer = threading.Thread(target=lambda: results.extend(app.learners.record_stream(DEFAULT_TENANT, stream())))
        consumer.start()
        assert read_all.wait(30)
    consumer.join(60)
    assert summary(results) == summary(expected)
    for learner in LEARNERS:
        assert app.store.events_of(DEFAULT_TENANT, learner) == reference.store.events_of(DEFAULT_TENANT, learner)
        mine, theirs = (
            app.store.get_skill_states(DEFAULT_TENANT, learner),
            reference.store.get_skill_states(DEFAULT_TENANT, learner),
        )
        assert mine is not None and theirs is not None and mine[0] == theirs[0]


def test_when_reading_the_stream_fails_the_batches_read_before_are_written(tiny_app: App) -> None:
    app = registered(tiny_app)

    def stream() -> Iterator[Callable[[], list[AssessmentEvent]]]:
        yield given(batch(0))
        yield given(batch(1))
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError):
        list(app.learners.record_stream(DEFAULT_TENANT, stream()))
    stored = {e.event_id for learner in LEARNERS for e in app.store.events_of(DEFAULT_TENANT, learner)}
    assert {e.event_id for e in batch(0) + batch(1) if e.learner_id != "ghost"} <= stored


def failing_insert_of(app: App, event_id: str) -> None:
    """The database refuses to insert `event_id` (a trigger), failing the transaction that tries."""
    with app.store.engine.begin() as c:  # type: ignore[attr-defined]
        if c.dialect.name == "sqlite":
            c.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON assessment_events WHEN NEW.event_id = '{event_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            c.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.event_id = '{event_id}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            )
            c.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON assessment_events FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def test_a_failed_write_is_raised_after_the_results_before_it_and_nothing_after_it_is_written(tiny_app: App) -> None:
    app = registered(tiny_app)
    failing_insert_of(app, "e1-0")

    def stream() -> Iterator[Callable[[], list[AssessmentEvent]]]:
        yield given(batch(0))
        while len(app.store.events_of(DEFAULT_TENANT, "ana")) == 0:  # batch 0 is committed alone
            time.sleep(0.01)
        yield given(batch(1))
        yield given(batch(2))

    got: list[IngestResult] = []

    def consume() -> None:
        for result in app.learners.record_stream(DEFAULT_TENANT, stream()):
            got.append(result)

    with pytest.raises(LubanError):
        consume()
    assert len(got) == 1 and got[0].accepted == 7
    stored = {e.event_id for learner in LEARNERS for e in app.store.events_of(DEFAULT_TENANT, learner)}
    assert stored == {e.event_id for e in batch(0)}


def test_a_batch_that_cannot_be_mapped_fails_the_stream_after_the_batches_before_it(tiny_app: App) -> None:
    app = registered(tiny_app)

    def unmappable() -> list[AssessmentEvent]:
        raise RuntimeError("a message that cannot be mapped")

    batches = [given(batch(0)), given(batch(1)), unmappable, given(batch(2))]
    with pytest.raises(RuntimeError):
        list(app.learners.record_stream(DEFAULT_TENANT, batches))
    stored = {e.event_id for learner in LEARNERS for e in app.store.events_of(DEFAULT_TENANT, learner)}
    assert stored == {e.event_id for e in batch(0) + batch(1) if e.learner_id != "ghost"}
