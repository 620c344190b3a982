"""Schema migrations (Alembic): a new store, stores of every earlier schema, and a store written by
the release before Alembic, upgraded in place on SQLite and PostgreSQL alike."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from recommender.domain.assessment import AssessmentEvent, ResultKind
from recommender.domain.learner import Learner
from recommender.errors import PreconditionFailed
from recommender.kt.bkt import BKTModel, profile_updater
from recommender.storage import SqlStore, migrations, open_store
from recommender.storage import schema as t
from recommender.storage.store import LEGACY_TENANT, erasure_subject
from tests.conftest import T0

UPDATE = profile_updater(BKTModel())
# written by the release before Alembic (schema 4); how: tests/fixtures/README.md
ADDED_AFTER_V4 = {"training_jobs", "shared_paths"}  # revisions 0005, 0006
COLUMNS_ADDED_AFTER_V4 = {"skill_states": ["studied"]}  # revision 0007
STORE_V4 = Path(__file__).resolve().parent.parent / "fixtures" / "store-v4.sqlite"


def _event(eid: str, learner: str = "ana", minutes: int = 0, skills: tuple[str, ...] = ("welding",)) -> AssessmentEvent:
    return AssessmentEvent(
        eid, learner, "welding-101", score=1.0, occurred_at=T0 + timedelta(minutes=minutes), skill_ids=skills
    )


def test_the_migrations_build_exactly_the_schema_the_store_is_written_against(store: SqlStore) -> None:
    with store.engine.connect() as c:
        differences = compare_metadata(MigrationContext.configure(c), t.metadata)
    assert differences == [], "schema.py and the migrations disagree: add a revision"


def test_every_revision_downgrades_and_upgrades_again(store: SqlStore) -> None:
    store.upsert_learner("t1", Learner("ana"), T0)
    with store.engine.begin() as c:
        command.downgrade(migrations.config(c), "base")
        assert set(sa.inspect(c).get_table_names()) <= {"alembic_version"}
    store.create_schema()
    assert store.schema_revision() == migrations.head() and store.get_learner("t1", "ana") is None


def _to_legacy(store: SqlStore, version: int) -> None:
    """The store as the hand-written upgrades left a store of `version`: no alembic_version, the
    counter at `version`, the columns and tables of later versions gone."""
    drops = {
        1: ["tenant_catalogs", "tenant_catalog_entries", "erasures"],
        2: ["tenant_catalogs", "tenant_catalog_entries", "erasures"],  # erasures came within 2
        3: [],
    }[version] + ["training_jobs", "shared_paths"]  # revisions 0005, 0006: after the hand-written upgrades
    columns = {
        1: [("skill_states", "studies_since_check"), ("model_activations", "tenant_id"), ("assessment_events", "kind")],
        2: [("model_activations", "tenant_id"), ("assessment_events", "kind")],
        3: [("assessment_events", "kind")],
    }[version] + [("skill_states", "studied")]  # revision 0007
    with store.engine.begin() as c:
        c.exec_driver_sql("DROP TABLE alembic_version")
        for table in drops:
            c.exec_driver_sql(f"DROP TABLE {table}")
        for table, column in columns:
            c.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        c.execute(t.meta.update().where(t.meta.c.key == "schema_version").values(value=str(version)))


def test_schema_1_is_upgraded_in_place_and_keeps_every_state(store: SqlStore) -> None:
    """A store written by schema 1 (no studies_since_check, no result kinds) opens at the newest
    revision: the columns are added with 0 (no check is due until new studies; kinds unspecified,
    inferred from item_id as before), and nothing stored is lost."""
    store.upsert_learner("t1", Learner("ana"), T0)
    store.record_events("t1", [_event("e1"), _event("e2", minutes=5, skills=("welding", "safety"))], UPDATE, T0)
    fingerprints = {e.event_id: e.fingerprint() for e in store.events_of("t1", "ana")}
    _to_legacy(store, 1)
    with store.engine.begin() as c:
        before = {tuple(r) for r in c.execute(sa.text("SELECT skill_id, mastery, attempts FROM skill_states"))}
    store.create_schema()
    assert store.schema_revision() == migrations.head()
    kept = store.events_of("t1", "ana")
    assert {e.event_id: e.fingerprint() for e in kept} == fingerprints, "a replay is still a duplicate"
    assert {e.kind for e in kept} == {ResultKind.UNSPECIFIED}
    found = store.get_skill_states("t1", "ana")
    assert found is not None
    assert {(s.skill_id, s.mastery, s.attempts, s.studies_since_check, s.studied) for s in found[0]} == {
        (*row, 0, True) for row in before
    }, "kept, and taught: module assessments named them"
    store.record_events("t1", [_event("e3", minutes=10)], UPDATE, T0)
    after = store.get_skill_states("t1", "ana")
    assert after is not None
    assert {s.skill_id: s.studies_since_check for s in after[0]} == {"safety": 0, "welding": 1}
    assert [e.event_id for e in store.events_of("t1", "ana")] == ["e1", "e2", "e3"]
    store.delete_learner("t1", "ana", T0)
    assert store.erased_since(T0) == {erasure_subject("t1", "ana")}, "erasures: created by the upgrade"


def test_schema_2_activations_are_kept_as_legacy_and_its_missing_tables_created(store: SqlStore) -> None:
    """A store written by schema 2 (activations for every tenant at once; erasures appeared within
    schema 2, so it may lack them) opens at the newest revision: its activations are kept, marked
    legacy, for the model registry to adopt or retire; new ones are the tenant's own."""
    store.record_activation("v1", T0)
    store.record_activation("v2", T0 + timedelta(seconds=1))
    _to_legacy(store, 2)
    store.create_schema()
    assert store.schema_revision() == migrations.head()
    assert [v for v, _ in store.activation_history(LEGACY_TENANT)] == ["v1", "v2"]
    assert store.activation_history() == []
    store.record_activation("v3", T0, tenant="t1")
    assert [v for v, _ in store.activation_history("t1")] == ["v3"] and store.activation_history("t2") == []
    store.upsert_learner("t1", Learner("ana"), T0)
    store.delete_learner("t1", "ana", T0)
    assert store.erased_since(T0) == {erasure_subject("t1", "ana")}
    assert store.tenant_catalogs() == {}


def test_a_newer_schema_is_refused_whoever_wrote_it(store: SqlStore) -> None:
    with store.engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(PreconditionFailed, match="revision 9999, newer than this code"):
        store.create_schema()
    with store.engine.begin() as c:
        c.exec_driver_sql("DROP TABLE alembic_version")
        c.execute(t.meta.update().where(t.meta.c.key == "schema_version").values(value="999"))
    with pytest.raises(PreconditionFailed, match="version 999, newer than this code"):
        store.create_schema()


def test_a_store_at_head_opens_without_alembic(store: SqlStore, store_url: str) -> None:
    """HEAD names Alembic's head, and a store already there opens without importing Alembic (a
    command's start); one behind it still goes through Alembic (the tests above)."""
    assert migrations.head() == migrations.HEAD, "a new revision: set migrations.HEAD to it"
    code = (
        "import sys\n"
        "from recommender.storage import open_store\n"
        f"s = open_store({store_url!r}); s.create_schema(); s.close()\n"
        "assert 'alembic' not in sys.modules, sorted(m for m in sys.modules if m.startswith('alembic'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert store.schema_revision() == migrations.HEAD


@pytest.fixture
def store_v4(store_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    """The store the release before Alembic wrote (tests/fixtures/store-v4.sqlite): the file itself
    on SQLite; on PostgreSQL, that release's schema (its create_all, counter at 4) holding the
    same rows."""
    if store_url.startswith("sqlite"):
        copy = tmp_path / "v4.db"
        shutil.copy(STORE_V4, copy)
        store = open_store(f"sqlite:///{copy}")
    else:
        source = sa.create_engine(f"sqlite:///{STORE_V4}")
        store = open_store(store_url)
        # that release's tables: today's, less those later revisions added
        tables = [table for table in t.metadata.sorted_tables if table.name not in ADDED_AFTER_V4]
        with source.connect() as read, store.engine.begin() as write:
            t.metadata.create_all(write, tables=tables)
            for name, columns in COLUMNS_ADDED_AFTER_V4.items():
                for column in columns:
                    write.exec_driver_sql(f"ALTER TABLE {name} DROP COLUMN {column}")
            for table in tables:
                later = COLUMNS_ADDED_AFTER_V4.get(table.name, [])
                kept = [c for c in table.c if c.name not in later]
                rows = [dict(r._mapping) for r in read.execute(sa.select(*kept))]
                if rows:
                    write.execute(table.insert(), rows)
                if "seq" in table.c:
                    write.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'seq'), "
                        f"(SELECT COALESCE(MAX(seq), 0) + 1 FROM {table.name}), false)"
                    )
        source.dispose()
    with store.engine.connect() as c:
        assert migrations.current(c) is None and not sa.inspect(c).has_table("alembic_version")
    yield store
    store.close()


def test_a_store_written_by_the_release_before_alembic_upgrades_in_place(store_v4: SqlStore) -> None:
    store = store_v4
    store.create_schema()
    assert store.schema_revision() == migrations.head()
    with store.engine.connect() as c:
        counter = c.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "schema_version")).scalar()
    assert counter == "4", "the release before Alembic still opens it"
    # what that release stored
    assert store.catalog_revision() == 2 and sorted(store.load_catalog().roles) == ["marketer", "welder"]
    acme = store.tenant_catalogs()["acme"]
    assert acme.inherits and [r.role_id for r in acme.roles] == ["marketer"]
    ana = store.get_learner("default", "ana")
    assert ana is not None and ana.cohort_id == "c1" and ana.languages == ("fr", "en")
    events = store.events_of("default", "ana")
    assert [(e.event_id, e.kind) for e in events] == [
        ("e1", ResultKind.MODULE_ASSESSMENT), ("e2", ResultKind.UNSPECIFIED), ("e3", ResultKind.CHECK),
    ]  # fmt: skip
    states = store.get_skill_states("default", "ana")
    assert states is not None
    assert {s.skill_id: (s.attempts, s.studies_since_check, s.studied) for s in states[0]} == {
        "safety": (1, 1, True), "welding": (2, 0, True)
    }  # fmt: skip
    assert [v for v, _ in store.activation_history()] == ["v-default"]
    assert [v for v, _ in store.activation_history("acme")] == ["v-acme"]
    assert (
        store.erased_since(T0) == {erasure_subject("default", "gone")} and store.get_learner("default", "gone") is None
    )
    assert store.count_events() == 5
    # and it takes new writes: a replay is a duplicate, a new result lands after the old ones
    outcomes = store.record_events("default", [events[0], _event("e5", minutes=60 * 24 * 7)], UPDATE, T0)
    assert [o.name for o in outcomes] == ["DUPLICATE", "ACCEPTED"]
    assert [e.event_id for e in store.events_of("default", "ana")] == ["e1", "e2", "e3", "e5"]
    store.upsert_learner("acme", Learner("dee"), T0)
    store.record_activation("v-acme-2", T0 + timedelta(days=9), tenant="acme")
    assert [v for v, _ in store.activation_history("acme")] == ["v-acme", "v-acme-2"]
    store.create_schema()
    assert store.schema_revision() == migrations.head(), "opening it again changes nothing"


def test_revision_7_marks_states_taught_from_the_stored_results(store: SqlStore) -> None:
    """A store at revision 6 keeps every state at 7, each marked taught as training reads the same
    results: a skill a module assessment named is taught, one only checked is not; states written
    after the upgrade follow their results."""
    store.upsert_learner("t1", Learner("ana"), T0)
    check = AssessmentEvent(event_id="e2", learner_id="ana", module_id="m1", item_id="q1", skill_ids=("safety",),
                            score=1.0, occurred_at=T0, kind=ResultKind.CHECK)  # fmt: skip
    store.record_events("t1", [_event("e1"), check], UPDATE, T0)
    with store.engine.begin() as c:
        command.downgrade(migrations.config(c), "0006")
    store.create_schema()
    found = store.get_skill_states("t1", "ana")
    assert found is not None
    assert {s.skill_id: s.studied for s in found[0]} == {"welding": True, "safety": False}, "a check teaches nothing"
    store.record_events("t1", [_event("e3", skills=("safety",))], UPDATE, T0)
    found = store.get_skill_states("t1", "ana")
    assert found is not None and {s.skill_id: s.studied for s in found[0]} == {"welding": True, "safety": True}
