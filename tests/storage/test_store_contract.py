"""The Store contract: every backend (SQLite file, PostgreSQL) runs this same suite."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

import pytest

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.catalog import build_catalog
from recommender.domain.jobs import TrainingJob
from recommender.domain.learner import Learner
from recommender.domain.profile import LearnerRecord, SkillState
from recommender.errors import Conflict
from recommender.kt.bkt import BKTModel, profile_updater, replay
from recommender.storage import EventOutcome, SqlStore, migrations, open_store
from recommender.storage.sql import SQLITE_ROWS_PER_STATEMENT
from recommender.storage.store import erasure_subject
from tests.conftest import T0, tiny_catalog

UPDATE = profile_updater(BKTModel())


def event(eid: str, learner: str = "ana", score: float = 1.0, minutes: int = 0, **kw: object) -> AssessmentEvent:
    return AssessmentEvent(
        event_id=eid,
        learner_id=learner,
        module_id=str(kw.get("module_id", "welding-101")),
        score=score,
        occurred_at=T0 + timedelta(minutes=minutes),
        skill_ids=tuple(kw.get("skills", ("welding",))),  # type: ignore[arg-type]
    )


def test_schema_is_at_the_newest_revision_and_idempotent(store: SqlStore) -> None:
    store.create_schema()
    assert store.schema_revision() == migrations.head()


def test_catalog_round_trip_and_optimistic_revision(store: SqlStore) -> None:
    assert store.load_catalog().is_empty()
    catalog = build_catalog(*tiny_catalog(), revision=1)
    store.save_catalog(catalog, expected_revision=0)
    loaded = store.load_catalog()
    assert loaded.revision == 1
    assert loaded.modules == catalog.modules and loaded.roles == catalog.roles
    assert loaded.skills == catalog.skills
    with pytest.raises(Conflict):
        store.save_catalog(build_catalog(*tiny_catalog(), revision=2), expected_revision=0)
    assert store.load_catalog().revision == 1


def test_learners_upsert_get_delete(store: SqlStore) -> None:
    ana = Learner("ana", cohort_id="c1", country="RW", languages=("fr", "en"), attributes={"a": "1"})
    stored = store.upsert_learner("t1", ana, T0)
    assert stored.created_at == T0 and stored.languages == ("fr", "en")
    later = store.upsert_learner("t1", Learner("ana", country="MA"), T0 + timedelta(hours=1))
    assert later.created_at == T0 and later.updated_at == T0 + timedelta(hours=1)
    assert later.country == "MA"
    assert store.get_learner("t2", "ana") is None, "tenants never see each other's learners"
    assert store.delete_learner("t1", "ana") == (True, 0)
    assert store.get_learner("t1", "ana") is None
    assert store.delete_learner("t1", "ana") == (False, 0)


def test_issue21_erasures_are_remembered_by_hash_only(store: SqlStore) -> None:
    store.upsert_learner("t1", Learner("ana-erased"), T0)
    store.delete_learner("t1", "ana-erased", T0 + timedelta(hours=1))
    assert store.erased_since(T0) == {erasure_subject("t1", "ana-erased")}
    assert store.erased_since(T0 + timedelta(hours=2)) == set(), "only erasures at or after the time"
    assert erasure_subject("t2", "ana-erased") != erasure_subject("t1", "ana-erased")
    with store.engine.connect() as c:
        rows = c.exec_driver_sql("SELECT * FROM erasures").all()
    assert len(rows) == 1 and "ana-erased" not in repr(rows)


def test_record_events_idempotency_conflict_and_unknown_learner(store: SqlStore) -> None:
    store.upsert_learner("t1", Learner("ana"), T0)
    outcomes = store.record_events("t1", [event("e1"), event("e1"), event("e2", learner="bob")], UPDATE, T0)
    assert outcomes == [EventOutcome.ACCEPTED, EventOutcome.DUPLICATE, EventOutcome.UNKNOWN_LEARNER]
    before = store.get_skill_states("t1", "ana")
    assert store.record_events("t1", [event("e1")], UPDATE, T0) == [EventOutcome.DUPLICATE]
    assert store.record_events("t1", [event("e1", score=0.0)], UPDATE, T0) == [EventOutcome.CONFLICT]
    assert store.get_skill_states("t1", "ana") == before, "a replay or a conflict changes nothing"
    assert len(store.events_of("t1", "ana")) == 1
    # the same event id is free in another tenant
    store.upsert_learner("t2", Learner("ana"), T0)
    assert store.record_events("t2", [event("e1")], UPDATE, T0) == [EventOutcome.ACCEPTED]


def test_learner_record_reads_learner_states_and_studied_modules_together(store: SqlStore) -> None:
    assert store.get_learner_record("t1", "ana") is None
    ana = store.upsert_learner("t1", Learner("ana", country="TH", languages=("th",)), T0)
    assert store.get_learner_record("t1", "ana") == LearnerRecord(ana, (), {})
    store.record_events("t1", [event("e1", skills=("welding", "safety"))], UPDATE, T0)
    store.record_events("t1", [event("e2", module_id="safety-101", skills=("safety",), score=0.1)], UPDATE, T0)
    store.record_events("t1", [event("e3", module_id="safety-101", skills=("safety",))], UPDATE, T0)
    placement = AssessmentEvent(
        "e4", "ana", "inspection-101", item_id="placement", skill_ids=("safety",), score=0.0, occurred_at=T0
    )
    store.record_events("t1", [placement], UPDATE, T0)
    found = store.get_skill_states("t1", "ana")
    assert found is not None
    record = store.get_learner_record("t1", "ana")
    # an item-level (placement) result is evidence about skills, not a studied module; studies count
    assert record == LearnerRecord(ana, tuple(found[0]), {"welding-101": 1, "safety-101": 2})
    # studies since each skill's last item result: after two safety studies the placement checked safety
    assert {s.skill_id: s.studies_since_check for s in found[0]} == {"safety": 0, "welding": 1}
    assert store.get_learner_record("t2", "ana") is None
    store.upsert_learner("t2", Learner("ana"), T0)
    record_t2 = store.get_learner_record("t2", "ana")
    assert record_t2 is not None and record_t2.studied_module_ids == {}, "tenants never mix"
    store.delete_learner("t1", "ana")
    store.upsert_learner("t1", Learner("ana"), T0)
    again = store.get_learner_record("t1", "ana")
    assert again is not None and again.studied_module_ids == {}, "erasure forgets what was studied"


def test_event_groups_commit_together_with_outcomes_per_group(store: SqlStore) -> None:
    for tenant in ("t1", "t2"):
        store.upsert_learner(tenant, Learner("ana"), T0)
    groups = [
        ("t2", [event("e1")]),
        ("t1", [event("e1"), event("e2", learner="bob")]),
        ("t1", [event("e1")]),  # the same id again, later in the same tenant: a replay
        ("t1", [event("e3", score=0.0)]),
        ("t2", [event("e1", score=0.0)]),  # same id, other payload, in t2: a conflict
        ("t1", []),
    ]
    results = store.record_event_groups(groups, UPDATE, T0 + timedelta(hours=1), with_profiles=True)
    assert [r.outcomes for r in results] == [
        [EventOutcome.ACCEPTED],
        [EventOutcome.ACCEPTED, EventOutcome.UNKNOWN_LEARNER],
        [EventOutcome.DUPLICATE],
        [EventOutcome.ACCEPTED],
        [EventOutcome.CONFLICT],
        [],
    ]
    assert [e.event_id for e in store.events_of("t1", "ana")] == ["e1", "e3"]
    assert [e.event_id for e in store.events_of("t2", "ana")] == ["e1"]
    found = store.get_skill_states("t1", "ana")
    assert found is not None
    assert {s.skill_id: s for s in found[0]} == replay(BKTModel(), [event("e1"), event("e3", score=0.0)])
    # each group carries its learners' profiles as committed: what a read returns next
    assert results[1].profiles == {"ana": found}
    assert results[3].profiles == {"ana": found} and results[5].profiles == {}
    assert results[4].profiles == {"ana": store.get_skill_states("t2", "ana")}
    assert found[1] == T0 + timedelta(hours=1)


def test_states_equal_a_replay_of_the_events(store: SqlStore) -> None:
    store.upsert_learner("t1", Learner("ana"), T0)
    events = [
        event(f"e{i}", score=(i % 3) / 2, minutes=i * 600, skills=("welding", "safety")[: 1 + i % 2]) for i in range(12)
    ]
    store.record_events("t1", events[:5], UPDATE, T0)
    store.record_events("t1", events[5:], UPDATE, T0)
    found = store.get_skill_states("t1", "ana")
    assert found is not None
    states, updated = found
    assert updated == T0
    assert {s.skill_id: s for s in states} == replay(BKTModel(), events)


def test_batches_see_what_other_connections_and_single_results_committed(store: SqlStore, store_url: str) -> None:
    """A writer that keeps the states it committed (SQLite) still applies each batch to the states
    as stored: after another store's commits, after single results (group commit), after an
    erasure, and after a batch of its own that failed."""
    other = open_store(store_url)
    try:
        store.upsert_learner("t1", Learner("ana"), T0)
        applied = [event("a1", skills=("welding", "safety"))]
        store.record_events("t1", applied, UPDATE, T0)
        applied.append(event("b1", score=0.0, minutes=10))
        other.record_events("t1", applied[-1:], UPDATE, T0)  # another process's connection
        applied.append(event("a2", minutes=20, skills=("welding", "safety")))
        store.record_events("t1", applied[-1:], UPDATE, T0)
        applied.append(event("g1", score=0.5, minutes=30, skills=("safety",)))
        store.record_event_groups([("t1", applied[-1:])], UPDATE, T0, with_profiles=True)
        applied.append(event("a3", minutes=40, skills=("welding", "safety")))
        store.record_events("t1", applied[-1:], UPDATE, T0)

        def failing(states: Mapping[str, SkillState], e: AssessmentEvent) -> list[SkillState]:
            if e.event_id == "x2":
                raise RuntimeError("the batch fails after updating a state")
            return UPDATE(states, e)

        with pytest.raises(RuntimeError):
            store.record_events("t1", [event("x1", score=0.0, minutes=50), event("x2")], failing, T0)
        applied.append(event("a4", score=0.0, minutes=60))
        store.record_events("t1", applied[-1:], UPDATE, T0)
        found = store.get_skill_states("t1", "ana")
        assert found is not None
        assert {s.skill_id: s for s in found[0]} == replay(BKTModel(), applied)
        assert [e.event_id for e in store.events_of("t1", "ana")] == [e.event_id for e in applied]

        other.delete_learner("t1", "ana")
        store.upsert_learner("t1", Learner("ana"), T0)
        store.record_events("t1", [event("c1", score=0.0)], UPDATE, T0)
        found = store.get_skill_states("t1", "ana")
        assert found is not None
        assert {s.skill_id: s for s in found[0]} == replay(BKTModel(), [event("c1", score=0.0)]), (
            "an erased learner starts again from nothing"
        )
    finally:
        other.close()


def test_single_results_answer_the_profile_as_stored_whatever_came_between(store: SqlStore, store_url: str) -> None:
    """A writer that keeps whole profiles (SQLite) answers each single result with the profile a
    read gives right after it: after its own batches, after another connection's commits, after a
    batch that failed, after an erasure, and for a duplicate (nothing new: the profile as stored)."""
    other = open_store(store_url)

    def single(e: AssessmentEvent, at: int) -> None:
        (result,) = store.record_event_groups([("t1", [e])], UPDATE, T0 + timedelta(minutes=at), with_profiles=True)
        assert result.profiles == {"ana": store.get_skill_states("t1", "ana")}

    def failing(states: Mapping[str, SkillState], e: AssessmentEvent) -> list[SkillState]:
        raise RuntimeError("the batch fails after reading the states")

    try:
        store.upsert_learner("t1", Learner("ana"), T0)
        single(event("s1", skills=("welding", "safety")), 1)
        single(event("s2", score=0.0, minutes=1), 2)
        store.record_events("t1", [event("b1", minutes=2, skills=("safety",))], UPDATE, T0 + timedelta(minutes=3))
        single(event("s2", score=0.0, minutes=1), 4)  # a duplicate: the batch's profile time stays
        other.record_events("t1", [event("o1", score=0.0, minutes=3)], UPDATE, T0 + timedelta(minutes=5))
        single(event("s3", minutes=4, skills=("welding", "safety")), 6)
        with pytest.raises(RuntimeError):
            store.record_events("t1", [event("x1", minutes=5)], failing, T0 + timedelta(minutes=7))
        single(event("s4", score=0.5, minutes=6), 8)
        other.delete_learner("t1", "ana")
        store.upsert_learner("t1", Learner("ana"), T0)
        single(event("s5", score=0.0, minutes=7), 9)
        found = store.get_skill_states("t1", "ana")
        assert found is not None
        assert {s.skill_id: s for s in found[0]} == replay(BKTModel(), [event("s5", score=0.0, minutes=7)])
    finally:
        other.close()


def test_a_batch_larger_than_one_statement_is_stored_in_order(store: SqlStore) -> None:
    """SQLite writes a batch's rows as multi-row statements: every row, in order, the states as a
    replay gives them, whether a statement is full or the last one is partly full."""
    learners = [f"l{k}" for k in range(5)]
    for learner in learners:
        store.upsert_learner("t1", Learner(learner), T0)
    events = [
        event(f"e{i}", learner=learners[i % 5], score=(i % 4) / 3, minutes=i, skills=("welding", "safety")[: 1 + i % 2])
        for i in range(SQLITE_ROWS_PER_STATEMENT * 2 + 37)
    ]
    assert store.record_events("t1", events, UPDATE, T0) == [EventOutcome.ACCEPTED] * len(events)
    for learner in learners:
        mine = [e for e in events if e.learner_id == learner]
        assert store.events_of("t1", learner) == mine
        found = store.get_skill_states("t1", learner)
        assert found is not None and {s.skill_id: s for s in found[0]} == replay(BKTModel(), mine)


def test_concurrent_writers_on_one_learner_lose_nothing(store: SqlStore) -> None:
    store.upsert_learner("t1", Learner("ana"), T0)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(10):
                store.record_events("t1", [event(f"w{w}-{i}", score=(w + i) % 2, minutes=w)], UPDATE, T0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    applied = store.events_of("t1", "ana")
    assert len(applied) == 80
    found = store.get_skill_states("t1", "ana")
    assert found is not None
    welding = {s.skill_id: s for s in found[0]}["welding"]
    assert welding.attempts == 80
    assert {s.skill_id: s for s in found[0]} == replay(BKTModel(), applied), (
        "the stored profile equals the sequential replay in commit order"
    )


def test_delete_erases_events_and_states(store: SqlStore) -> None:
    store.upsert_learner("t1", Learner("ana"), T0)
    store.upsert_learner("t1", Learner("bob"), T0)
    store.record_events("t1", [event("e1"), event("e2", learner="bob")], UPDATE, T0)
    assert store.delete_learner("t1", "ana") == (True, 1)
    assert store.get_skill_states("t1", "ana") is None
    assert [e.event_id for _, e in store.iter_events()] == ["e2"]
    assert store.count_events() == 1


def test_iter_learners_and_events_stream_everything(store: SqlStore) -> None:
    learners = [Learner(f"l{i:04d}") for i in range(30)]
    store.upsert_learners("t1", learners, T0)
    store.upsert_learners("t0", [Learner("z")], T0)
    assert [(tn, x.learner_id) for tn, x in store.iter_learners()][:2] == [("t0", "z"), ("t1", "l0000")]
    assert len(list(store.iter_learners("t1"))) == 30
    store.record_events("t1", [event(f"e{i}", learner=f"l{i:04d}") for i in range(30)], UPDATE, T0)
    assert [e.event_id for _, e in store.iter_events("t1")] == [f"e{i}" for i in range(30)]
    assert store.count_learners() == 31


def test_model_activation_history(store: SqlStore) -> None:
    assert store.activation_history() == []
    store.record_activation("v1", T0)
    store.record_activation("v2", T0 + timedelta(seconds=1))
    assert [v for v, _ in store.activation_history()] == ["v1", "v2"]


def test_training_jobs_round_trip_per_tenant_newest_first(store: SqlStore) -> None:
    first = TrainingJob("j1", T0, "t1", updated_at=T0)
    store.save_training_job(first)
    done = replace(first, state="succeeded", progress=1.0, message="v1 activated", model_version="v1",
                   activated=True, finished_at=T0 + timedelta(minutes=2), metrics={"auc": 0.75},
                   updated_at=T0 + timedelta(minutes=2))  # fmt: skip
    store.save_training_job(done)  # the same job, written again as it ends
    later = TrainingJob("j2", T0 + timedelta(hours=1), "t1", updated_at=T0 + timedelta(hours=1))
    store.save_training_job(later)
    store.save_training_job(TrainingJob("j3", T0, "t2", updated_at=T0))
    assert store.training_job("t1", "j1") == done
    assert store.training_job("t2", "j1") is None, "another tenant's job is not found"
    assert [j.job_id for j in store.training_jobs("t1")] == ["j2", "j1"]
    assert [j.job_id for j in store.training_jobs("t1", limit=1)] == ["j2"]


def test_learner_records_read_many_learners_like_one(store: SqlStore) -> None:
    ana = store.upsert_learner("t1", Learner("ana", languages=("en",)), T0)
    store.upsert_learner("t1", Learner("bo", languages=("fr",)), T0)
    store.upsert_learner("t2", Learner("cy"), T0)
    store.record_events("t1", [event("e1", skills=("welding", "safety"))], UPDATE, T0)
    placement = AssessmentEvent(
        "e2", "ana", "inspection-101", item_id="placement", skill_ids=("safety",), score=0.0, occurred_at=T0
    )
    store.record_events("t1", [placement], UPDATE, T0)
    records = store.get_learner_records("t1", ["ana", "bo", "cy", "nobody", "ana"])
    assert set(records) == {"ana", "bo"}, "unknown ids and other tenants' learners are absent"
    assert records["ana"] == store.get_learner_record("t1", "ana")
    assert records["ana"].learner == ana and records["ana"].studied_module_ids == {"welding-101": 1}
    assert records["bo"] == store.get_learner_record("t1", "bo")
    assert store.get_learner_records("t1", []) == {}


def test_results_since_names_each_learner_with_new_results_once(store: SqlStore) -> None:
    """What every server process polls to plan ahead for results the others recorded."""
    start, none = store.results_since(None, 100)
    assert none == []
    assert store.results_since(start, 100) == (start, []), "nothing new: the same mark"
    store.upsert_learners("t1", [Learner("ana"), Learner("bob")], T0)
    store.upsert_learner("t2", Learner("ana"), T0)
    store.record_events("t1", [event(f"a{i}", minutes=i) for i in range(5)], UPDATE, T0)
    store.record_events("t1", [event("b1", learner="bob")], UPDATE, T0)
    store.record_events("t2", [event("a1")], UPDATE, T0)
    mark, found = store.results_since(start, 100)
    assert sorted(found) == [("t1", "ana"), ("t1", "bob"), ("t2", "ana")]
    assert mark > start
    assert store.results_since(mark, 100) == (mark, [])
    assert len(store.results_since(start, 2)[1]) == 2, "at most `limit` learners"
    store.record_events("t1", [event("b2", learner="bob", minutes=1)], UPDATE, T0)
    assert store.results_since(mark, 100)[1] == [("t1", "bob")]


def test_learners_version_and_changes_follow_the_tenant_s_learners(store: SqlStore) -> None:
    """What the dashboard's snapshots watch: a version that moves on every change of a tenant's
    learners (added, changed, assessed, erased) and the learners changed after a mark."""
    assert store.learners_version("t1") == (0, 0, 0)
    store.upsert_learners("t1", [Learner("ana"), Learner("bob")], T0)
    store.upsert_learner("t2", Learner("zoe"), T0 + timedelta(hours=3))
    first = store.learners_version("t1")
    assert first[0] == 2 and first[1] > 0 and first[2] == 0
    assert store.changed_learners("t1", 0) == ["ana", "bob"]
    mark = max(first[1:])
    assert store.changed_learners("t1", mark) == []  # zoe is another tenant's
    store.record_events("t1", [event("e1", learner="bob")], UPDATE, T0 + timedelta(hours=1))
    second = store.learners_version("t1")
    assert second[2] > mark and store.changed_learners("t1", mark) == ["bob"]
    store.upsert_learner("t1", Learner("ana", country="MA"), T0 + timedelta(hours=2))
    assert store.changed_learners("t1", max(second[1:])) == ["ana"]
    store.delete_learner("t1", "ana")
    assert store.learners_version("t1")[0] == 1


def test_sqlite_writers_of_every_process_take_turns_on_the_lock_file(sqlite_url: str) -> None:
    """A writer waits for whoever holds the lock file beside the database (another process, here
    this test's own lock on it) and writes once it is released, rather than meeting SQLite's busy
    handler; readers are not held up."""
    store = open_store(sqlite_url)
    store.create_schema()
    holder = os.open(sqlite_url.removeprefix("sqlite:///") + "-writer.lock", os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        wrote = threading.Event()

        def write() -> None:
            store.upsert_learners("t1", [Learner("waits", languages=("en",))], T0)
            wrote.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not wrote.wait(0.5), "the write waited for the lock's holder"
        assert store.get_learner("t1", "waits") is None, "reads go on meanwhile"
        fcntl.flock(holder, fcntl.LOCK_UN)
        writer.join(timeout=30)
        assert wrote.is_set() and store.get_learner("t1", "waits") is not None
    finally:
        os.close(holder)
        store.close()
