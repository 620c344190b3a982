"""One SQLAlchemy Core store for SQLite and PostgreSQL; dialects differ only in upserts,
row locks and connection setup (Gorse's storage/data/sql.go is the model).

Per-learner serialization: SQLite takes the database write lock up front (BEGIN IMMEDIATE);
PostgreSQL locks the learners' rows (SELECT ... FOR UPDATE, in id order to avoid deadlocks).
Either way, a read-modify-write of a profile and the insert of its events are one transaction.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import json
import logging
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from recommender.domain.assessment import AssessmentEvent, ResultKind, from_micros, to_micros
from recommender.domain.catalog import Catalog, Module, Skill, TargetRole, build_catalog
from recommender.domain.codec import (
    _Reader,
    learner_from_dict,
    learner_to_dict,
    module_from_reader,
    module_to_dict,
    role_from_reader,
    role_to_dict,
    skill_from_reader,
    skill_to_dict,
)
from recommender.domain.jobs import TrainingJob
from recommender.domain.learner import Learner
from recommender.domain.profile import LearnerRecord, SkillState, skill_state
from recommender.errors import Conflict, PreconditionFailed, StoreUnavailable
from recommender.storage import deadline, migrations
from recommender.storage import schema as t
from recommender.storage.store import (
    DEFAULT_TENANT,
    EventOutcome,
    LearnerRead,
    RecordedGroup,
    SharedPath,
    SharedPathKey,
    TenantCatalog,
    Updater,
    erasure_subject,
    version_key,
)
from recommender.storage.watchdog import Watchdog

log = logging.getLogger(__name__)

_IN_CHUNK = 500  # bound on bound parameters per IN (...) list
WRITER_CACHE_KIB = 32_768  # the SQLite writer connection's page cache
STATE_CACHE_LEARNERS = 100_000  # learners whose states the SQLite writer keeps between transactions
WATCHDOG = Watchdog()
PING_SECONDS = 5.0  # a checkout ping longer than this means the server is not answering
SEVER_MARGIN_SECONDS = 1.0  # past a call's deadline before the watchdog cuts its connection
_PG_RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected
_MIGRATION_LOCK = 0x4C55_4241_4E  # the advisory lock key PostgreSQL stores migrate under


def open_store(url: str, *, pool_size: int = 8, timeout_seconds: float = 10.0) -> SqlStore:
    """Build the engine for `url` (sqlite:///PATH or postgresql+psycopg://...). On PostgreSQL a
    statement runs at most `timeout_seconds` and waits at most half of that for a lock (less when
    the call being served has less time left: storage.deadline)."""
    parsed = sa.engine.make_url(url)
    writer_lock: WriterLock | None = None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        writer_lock = WriterLock(None)
        if database and database != ":memory:" and not database.startswith("file:"):
            _owner_only_file(Path(database))
            writer_lock = WriterLock(Path(database + "-writer.lock"))
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
    elif parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,  # pinged on checkout under the watchdog instead (_configure_postgres)
            pool_recycle=1800,
            # keepalives notice a peer that vanished from the network (not one that stopped answering)
            connect_args={"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                          "keepalives_count": 3},
        )  # fmt: skip
        _configure_postgres(engine, timeout_seconds)
    else:
        raise PreconditionFailed(f"unsupported store URL scheme {parsed.drivername!r}")
    return SqlStore(engine, timeout_seconds, writer_lock)


class WriterLock:
    """SQLite's one writer at a time, taken before BEGIN IMMEDIATE by every writer of the file:
    in-process threads queue on a lock, other processes (several server processes, a CLI import
    beside a server) on an fcntl lock on a file beside the database. Both wake the next waiter as
    soon as the holder releases; SQLite's own busy handler sleeps with a growing backoff, which
    gave writers seconds of tail latency (docs/decisions/0011-processes-writes-and-path-cache.md).
    Reentrant within a thread (a write inside a write takes nothing more)."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._path = path

    def __enter__(self) -> WriterLock:
        self._lock.acquire()
        try:
            if self._depth == 0 and self._path is not None:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # blocks in the kernel, woken at the holder's unlock
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1
        return self

    def __exit__(self, *_exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    @property
    def shared(self) -> bool:
        """Whether the lock is taken across processes (a file beside the database)."""
        return self._path is not None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _configure_postgres(engine: Engine, timeout_seconds: float) -> None:
    """Session timeouts on every new connection, so no statement or lock wait is unbounded, and a
    ping on every checkout (a pooled connection may have died with a restarted server) that the
    watchdog bounds, as a ping to a frozen server would never return."""
    statement_ms = max(int(timeout_seconds * 1000), 1)

    @sa_event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        armed = WATCHDOG.arm(dbapi_connection.pgconn.socket, min(timeout_seconds, PING_SECONDS))
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa_exc.DisconnectionError(f"pooled connection is gone: {_short(exc)}") from exc
        finally:
            WATCHDOG.disarm(armed)

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {statement_ms}")
            cursor.execute(f"SET lock_timeout = {max(statement_ms // 2, 1)}")
        dbapi_connection.commit()  # a SET in a transaction that is rolled back would be undone


def _owner_only_file(path: Path) -> None:
    """The store file and its folder are created readable by their owner only (0600 / 0700); an
    existing file is narrowed to 0600. SQLite gives its -wal and -shm files the database's mode."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with suppress(FileNotFoundError, PermissionError):
            os.chmod(f, 0o600)


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers; FULL sync so an acknowledged write survives a crash;
    writers take the lock at BEGIN so read-modify-write never meets a lock upgrade deadlock.
    Checkpoints every 10,000 WAL pages (40 MB) instead of SQLite's 1,000: a batch of results
    dirties one leaf of the per-learner event index per learner, and a checkpoint after nearly
    every batch would copy those pages back each time (docs/decisions/0005-wal-checkpoints.md; no
    effect on durability: each commit still syncs the WAL). secure_delete zeroes what a delete
    frees, so an erased learner's values do not linger in free pages."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free pages
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("luban_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    """The Store implementation. Thread-safe: each call takes its own pooled connection."""

    def __init__(self, engine: Engine, timeout_seconds: float = 10.0, writer_lock: WriterLock | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._timeout_seconds = timeout_seconds
        self._compiled: dict[str, Any] = {}
        self._reads = _serving_reads()  # built once: building them per call cost as much as running them
        self._mark = "?" if self.dialect == "sqlite" else "%s"  # the driver's parameter marker
        # SQLite has one writer at a time: writers queue on WriterLock (woken at once) rather than
        # in SQLite's busy handler; PostgreSQL serializes per learner with row locks instead
        if writer_lock is None and self.dialect == "sqlite":
            writer_lock = WriterLock(None)
        self._writer_lock = writer_lock
        self._write_lock: AbstractContextManager[object] = writer_lock if writer_lock is not None else nullcontext()
        self._writer: Any = None  # SQLite: the pooled connection _sqlite_write keeps
        # SQLite: skill states as the writer last committed them, per (tenant, learner): skill ->
        # state, or None where the learner has none; valid while no other connection committed
        # (PRAGMA data_version, read in each write transaction, still gives _states_version)
        self._state_cache: dict[tuple[str, str], dict[str, SkillState | None]] = {}
        # the learners whose entry there holds every state they have (a single result's commit
        # answers with the whole profile), with the time their profile was last updated: such a
        # commit reads nothing of them again
        self._profiled: dict[tuple[str, str], int | None] = {}
        self._states_version: int | None = None

    # plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool, synced: bool = True) -> Iterator[Connection]:
        """A transaction on a pooled connection. `synced=False`: a write of what is only ever a
        cache (stored paths), committed without waiting for a sync (SQLite's synchronous=NORMAL
        for this transaction, PostgreSQL's synchronous_commit=off): a crash may lose it, never
        anything else. Every synced commit after it syncs it too (one WAL, written in order), and
        a write of results, which every caller of the server waits for, does not queue behind its
        sync."""
        options = {} if write else {"luban_read_only": True}
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise StoreUnavailable("the call's deadline passed before the store was reached")
        try:
            with (
                self._write_lock if write else nullcontext(),
                self.engine.connect().execution_options(**options) as conn,
                self._unsynced(conn) if not synced else nullcontext(),
            ):
                armed = self._arm(conn, left)
                try:
                    with conn.begin():
                        if armed is not None and left is not None and left < self._timeout_seconds:
                            # this transaction gives up when the call does (the session's timeouts are longer)
                            ms = max(int(left * 1000), 1)
                            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                        if not synced and self.dialect == "postgresql":
                            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                        yield conn
                finally:
                    if armed is not None:
                        WATCHDOG.disarm(armed)
        except sa_exc.IntegrityError as exc:
            raise Conflict(f"a concurrent write conflicted; retry ({_short(exc)})") from exc
        except sa_exc.DBAPIError as exc:
            code = getattr(getattr(exc, "orig", None), "sqlstate", None)
            if code in _PG_RETRYABLE:
                raise Conflict(f"concurrent transaction conflict; retry ({code})") from exc
            raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc
        except sa_exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"store error: {_short(exc)}") from exc
        except self.engine.dialect.loaded_dbapi.Error as exc:  # from a statement on the driver's own cursor
            if isinstance(exc, self.engine.dialect.loaded_dbapi.IntegrityError):
                raise Conflict(f"a concurrent write conflicted; retry ({_short(exc)})") from exc
            code = getattr(exc, "sqlstate", None)
            if code in _PG_RETRYABLE:
                raise Conflict(f"concurrent transaction conflict; retry ({code})") from exc
            raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc

    @contextmanager
    def _unsynced(self, conn: Connection) -> Iterator[None]:
        """SQLite: the pooled connection commits without a sync until the block ends (the setting
        cannot change inside a transaction), then syncs again; a connection that cannot be set back
        is never used again."""
        if self.dialect != "sqlite":
            yield
            return
        driver = _driver(conn)
        driver.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            try:
                driver.execute("PRAGMA synchronous=FULL")
            except BaseException:
                conn.invalidate()
                raise

    @contextmanager
    def _sqlite_write(self) -> Iterator[Any]:
        """A SQLite write transaction on the driver's connection, for the group-commit writer and
        ingest: SQLAlchemy's connection and transaction machinery cost as much as the statements
        of a small group, on the one thread every commit waits for. The same lock, BEGIN IMMEDIATE
        and errors as _tx."""
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise StoreUnavailable("the call's deadline passed before the store was reached")
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            with self._write_lock:
                if self._writer is None:  # kept for the store's life: only writers, one at a time, use it
                    self._writer = self.engine.raw_connection()
                    # a bulk write touches pages all over the events' indexes (one learner's
                    # leaf per result): SQLite's default cache (2 MB) re-reads them as they grow
                    self._writer.driver_connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
                conn: Any = self._writer.driver_connection
                conn.execute("BEGIN IMMEDIATE")
                try:
                    (version,) = conn.execute("PRAGMA data_version").fetchone()
                    if version != self._states_version:  # another connection committed since
                        self._clear_states()
                        self._states_version = version
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    self._forget_states()  # it may hold what was not committed
                    if conn.in_transaction:  # the body failed, or the commit did
                        with suppress(dbapi.Error):
                            conn.execute("ROLLBACK")
                    raise
        except dbapi.IntegrityError as exc:
            raise Conflict(f"a concurrent write conflicted; retry ({_short(exc)})") from exc
        except (dbapi.Error, sa_exc.SQLAlchemyError) as exc:
            self._drop_writer()  # a connection that failed is not kept: the next write opens another
            raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc

    def _forget_states(self) -> None:
        self._clear_states()
        self._states_version = None

    def _clear_states(self) -> None:
        self._state_cache.clear()
        self._profiled.clear()

    def _drop_writer(self) -> None:
        with self._write_lock:
            self._forget_states()
            writer, self._writer = self._writer, None
            if writer is not None:
                with suppress(Exception):
                    writer.invalidate()  # closed, not returned to the pool

    def _arm(self, conn: Connection, left: float | None) -> Any:
        """PostgreSQL: the watchdog severs this connection if the transaction (commit included)
        outlives what the server's own timeouts allow it (twice the store's timeout; the call's
        deadline plus SEVER_MARGIN_SECONDS): then the server is not running them."""
        if self.dialect != "postgresql":
            return None
        bound = 2 * self._timeout_seconds
        if left is not None:
            bound = min(bound, left + SEVER_MARGIN_SECONDS)
        fd = conn.connection.dbapi_connection.pgconn.socket  # type: ignore[union-attr]
        return WATCHDOG.arm(fd, bound)

    def _executemany(
        self,
        c: Connection | Any,
        name: str,
        statement: Callable[[], Any],
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
    ) -> None:
        """Bulk writes straight to the driver's executemany (`c`: a Connection or the driver's
        own): `statement` is built and compiled once per store (cached under `name`) and the rows
        (tuples of plain str/int/float values, in `columns`' order) skip SQLAlchemy's per-row
        parameter processing, a cost paid per row on the ingest path."""
        if not rows:
            return  # the driver would take an empty list for "no parameters" and fail
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = statement().compile(dialect=self.engine.dialect, column_keys=list(columns))
            self._compiled[name] = compiled
        params: Any = rows
        if not compiled.positional:
            params = [dict(zip(columns, row, strict=True)) for row in rows]
        elif list(compiled.positiontup) != list(columns):
            values = operator.itemgetter(*[columns.index(k) for k in compiled.positiontup])
            params = [values(row) if len(compiled.positiontup) > 1 else (values(row),) for row in rows]
        driver = _driver(c)
        cursor = driver.cursor()
        try:
            if self.dialect == "sqlite" and compiled.positional and len(params) > 1:
                _sqlite_rows(driver, cursor, compiled.string, len(compiled.positiontup), params)
            else:
                cursor.executemany(compiled.string, params)
        finally:
            cursor.close()

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def create_schema(self) -> None:
        """Create the schema, or upgrade it in place, in one transaction (storage/migrations)."""
        with self._tx(write=True) as c:
            if self.dialect == "postgresql":
                # two processes opening one new store: the second waits, then finds it at head
                c.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            migrations.upgrade(c)

    def schema_revision(self) -> str | None:
        """The schema's migration revision (None before create_schema)."""
        with self._tx(write=False) as c:
            return migrations.current(c)

    def ping(self) -> None:
        with self._tx(write=False) as c:
            c.execute(sa.text("SELECT 1"))

    @property
    def one_writer(self) -> bool:
        return self._writer_lock is not None and self._writer_lock.shared

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()  # back to the pool, which dispose() closes
                self._writer = None
        self.engine.dispose()
        if self._writer_lock is not None:
            self._writer_lock.close()

    # catalog --------------------------------------------------------------------------------
    def catalog_revision(self) -> int:
        with self._tx(write=False) as c:
            return self._revision(c)

    def _revision(self, c: Connection) -> int:
        value = c.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "catalog_revision")).scalar_one_or_none()
        return int(value) if value is not None else 0

    def load_catalog(self) -> Catalog:
        with self._tx(write=False) as c:
            revision = self._revision(c)
            rows = c.execute(sa.select(t.catalog_entries)).all()
        return _shared_catalog(rows, revision)

    def load_tenant_catalog(self, tenant: str) -> tuple[Catalog, TenantCatalog | None]:
        e, f = t.tenant_catalog_entries.c, t.tenant_catalogs.c
        with self._tx(write=False) as c:
            revision = self._revision(c)
            shared = c.execute(sa.select(t.catalog_entries)).all()
            inherits = c.execute(sa.select(f.inherits).where(f.tenant_id == tenant)).scalar_one_or_none()
            own = c.execute(sa.select(t.tenant_catalog_entries).where(e.tenant_id == tenant)).all()
        if inherits is None:
            return _shared_catalog(shared, revision), None
        skills, modules, roles = _catalog_parts(own)
        return _shared_catalog(shared, revision), TenantCatalog(skills, modules, roles, bool(inherits))

    def tenant_catalogs(self) -> dict[str, TenantCatalog]:
        with self._tx(write=False) as c:
            query = sa.select(t.tenant_catalogs.c.tenant_id, t.tenant_catalogs.c.inherits)
            flags = dict(c.execute(query).tuples().all())
            rows = c.execute(sa.select(t.tenant_catalog_entries)).all()
        by_tenant: dict[str, list[Any]] = {tenant: [] for tenant in flags}
        for row in rows:
            by_tenant.setdefault(row.tenant_id, []).append(row)
        return {tenant: TenantCatalog(*_catalog_parts(by_tenant[tenant]), bool(flags[tenant])) for tenant in flags}

    def save_tenant_catalog(self, tenant: str, own: TenantCatalog, revision: int, expected_revision: int) -> None:
        e, f = t.tenant_catalog_entries.c, t.tenant_catalogs.c
        with self._tx(write=True) as c:
            self._bump_revision(c, revision, expected_revision)
            c.execute(t.tenant_catalog_entries.delete().where(e.tenant_id == tenant))
            c.execute(t.tenant_catalogs.delete().where(f.tenant_id == tenant))
            c.execute(t.tenant_catalogs.insert().values(tenant_id=tenant, inherits=int(own.inherits)))
            rows = [{"tenant_id": tenant, **row} for row in _catalog_rows(own.skills, own.modules, own.roles)]
            if rows:
                c.execute(t.tenant_catalog_entries.insert(), rows)

    def _bump_revision(self, c: Connection, revision: int, expected_revision: int) -> None:
        updated = c.execute(
            t.meta.update()
            .where(t.meta.c.key == "catalog_revision")
            .where(t.meta.c.value == str(expected_revision))
            .values(value=str(revision))
        )
        if updated.rowcount != 1:
            raise Conflict("the catalog changed concurrently; reload it and retry")

    def save_catalog(self, catalog: Catalog, expected_revision: int) -> None:
        with self._tx(write=True) as c:
            self._bump_revision(c, catalog.revision, expected_revision)
            c.execute(t.catalog_entries.delete())
            rows = _catalog_rows(catalog.skills.values(), catalog.modules.values(), catalog.roles.values())
            if rows:
                c.execute(t.catalog_entries.insert(), rows)

    # learners -------------------------------------------------------------------------------
    def upsert_learner(self, tenant: str, learner: Learner, now: datetime) -> Learner:
        self.upsert_learners(tenant, [learner], now)
        stored = self.get_learner(tenant, learner.learner_id)
        assert stored is not None
        return stored

    def upsert_learners(self, tenant: str, learners: Sequence[Learner], now: datetime) -> None:
        if not learners:
            return
        now_us = to_micros(now)
        rows = [
            {
                "tenant_id": tenant,
                "learner_id": x.learner_id,
                "cohort_id": x.cohort_id,
                "body": json.dumps(learner_to_dict(x), ensure_ascii=False),
                "created_us": now_us,
                "updated_us": now_us,
            }
            for x in learners
        ]
        stmt = self._insert(t.learners)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "learner_id"],
            set_={
                "cohort_id": stmt.excluded.cohort_id,
                "body": stmt.excluded.body,
                "updated_us": stmt.excluded.updated_us,
            },
        )
        with self._tx(write=True) as c:
            c.execute(stmt, rows)

    def get_learner(self, tenant: str, learner_id: str) -> Learner | None:
        return self.get_learners(tenant, [learner_id]).get(learner_id)

    def get_learners(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, Learner]:
        with self._tx(write=False) as c:
            return self._learners(c, tenant, sorted(set(learner_ids)))

    def _learners(self, c: Connection, tenant: str, learner_ids: Sequence[str]) -> dict[str, Learner]:
        found: dict[str, Learner] = {}
        x = t.learners.c
        for chunk in _chunks(learner_ids):
            for row in c.execute(sa.select(t.learners).where(x.tenant_id == tenant).where(x.learner_id.in_(chunk))):
                found[row.learner_id] = _learner_from_row(row)
        return found

    def get_learner_record(self, tenant: str, learner_id: str) -> LearnerRecord | None:
        found = self.get_learner_record_if_changed(tenant, learner_id, None)
        return None if found is None else found.record

    def get_learner_record_if_changed(
        self,
        tenant: str,
        learner_id: str,
        known: object | None,
        shared: SharedPathKey | None = None,
        shared_since: datetime | None = None,
    ) -> LearnerRead | None:
        """The learner's evidence version and, unless it equals `known` or a stored path (`shared`)
        was planned from it, their record, in one transaction. The version changes with every
        write that can change a path: the learner's row (rewritten, or erased and created again)
        and every accepted result (a new event seq)."""
        params: dict[str, Any] = {"tenant": tenant, "learner": learner_id}
        name = "version"
        if shared is not None:
            since = to_micros(shared_since) if shared_since is not None else 0
            params.update(request=shared.request_key, planner=shared.planner_key, since=since)
            name = "version_shared"
        if self.dialect == "sqlite":
            found = self._sqlite_learner_read(name, params, learner_id, known, shared)
        else:
            with self._tx(write=False) as c:
                found = _learner_read(lambda n: self._raw(c, n, params), name, learner_id, known, shared)
        if found is None or isinstance(found, LearnerRead):
            return found
        version, states, studied = found
        body, created_us, updated_us = version[:3]
        learner = replace(learner_from_dict(json.loads(body)), created_at=from_micros(created_us),
                          updated_at=from_micros(updated_us))  # fmt: skip
        return LearnerRead(version, LearnerRecord(learner, tuple(states), studied))

    def _sqlite_learner_read(
        self, name: str, params: dict[str, Any], learner_id: str, known: object | None, shared: SharedPathKey | None
    ) -> _Read:
        """get_learner_record_if_changed on SQLite, on one pooled connection outside SQLAlchemy's
        transaction machinery (which costs more than the statements): the version first, alone
        (one statement reads one snapshot: the page-view case, where usually nothing changed or
        another process planned the path already), then, when the states are needed, everything
        again in one read transaction."""
        with self._sqlite_cursor() as cursor:
            run = functools.partial(self._sqlite_statement, cursor, params)
            if known is not None or shared is not None:
                rows = run(name)
                if not rows:
                    return None
                unchanged = _unchanged(rows[0], learner_id, known, shared)
                if unchanged is not None:
                    return unchanged
            cursor.execute("BEGIN")
            try:
                return _learner_read(run, name, learner_id, known, shared)
            finally:
                cursor.execute("COMMIT")

    @contextmanager
    def _sqlite_cursor(self) -> Iterator[Any]:
        """A driver cursor on one pooled connection, outside SQLAlchemy's transaction machinery
        (which costs more than the serving reads' statements), with the store's errors."""
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise StoreUnavailable("the call's deadline passed before the store was reached")
        try:
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
            finally:
                raw.close()  # back to the pool
        except (sa_exc.SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise StoreUnavailable(f"store unavailable: {_short(exc)}") from exc

    def _sqlite_statement(self, cursor: Any, params: dict[str, Any], name: str) -> list[Any]:
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = self._reads[name].compile(dialect=self.engine.dialect)
        values = {**compiled.params, **params}
        cursor.execute(compiled.string, tuple(values[k] for k in compiled.positiontup))
        return list(cursor.fetchall())

    def results_since(self, seq: int | None, limit: int) -> tuple[int, list[tuple[str, str]]]:
        """Two indexed statements on the driver's cursor (every process runs this every few
        milliseconds while idle, so it costs what the statements cost, not SQLAlchemy's machinery):
        the last seq, and only when it moved, the learners after `seq` up to it, distinct in SQL (a
        bulk import's many results per learner never reach Python)."""
        params: dict[str, Any] = {"since": seq or 0, "limit": limit}

        def read(run: Callable[[str, dict[str, Any]], list[Any]]) -> tuple[int, list[tuple[str, str]]]:
            last = int(run("last_seq", params)[0][0] or 0)
            if seq is None or last <= seq:
                return (last if seq is None else seq), []
            rows = run("learners_since", {**params, "upto": last})
            return last, [(str(r[0]), str(r[1])) for r in rows]

        if self.dialect == "sqlite":
            # outside any transaction: each statement reads its own snapshot
            with self._sqlite_cursor() as cursor:
                return read(lambda name, params: self._sqlite_statement(cursor, params, name))
        with self._tx(write=False) as c:
            return read(functools.partial(self._raw, c))

    def put_shared_paths(self, tenant: str, paths: Sequence[SharedPath]) -> None:
        if not paths:
            return
        x = t.learners.c
        with self._tx(write=True, synced=False) as c:  # a cache: what a crash loses is planned again
            # the learners as they are now, each row locked against an erasure until this commits
            ids = sorted({p.learner_id for p in paths})
            created: dict[str, int] = {}
            for chunk in _chunks(ids):
                query = (
                    sa.select(x.learner_id, x.created_us).where(x.tenant_id == tenant).where(x.learner_id.in_(chunk))
                )
                if self.dialect == "postgresql":
                    query = query.with_for_update(read=True)
                created.update((str(k), int(v)) for k, v in c.execute(query))
            columns = ("tenant_id", "learner_id", "request_key", "planner_key", "version_key", "generated_us", "body")
            rows = [
                (tenant, p.learner_id, p.key.request_key, p.key.planner_key, version_key(p.version),
                 to_micros(p.generated_at), p.body)
                for p in paths
                if _created_us(p.version) == created.get(p.learner_id)
            ]  # fmt: skip
            self._executemany(c, "put_shared_paths", self._shared_upsert, columns, rows)

    def _shared_upsert(self) -> Any:
        insert = self._insert(t.shared_paths)
        kept = ("planner_key", "version_key", "generated_us", "body")
        return insert.on_conflict_do_update(
            index_elements=["tenant_id", "learner_id", "request_key"],
            set_={k: insert.excluded[k] for k in kept},
        )

    def _raw(self, c: Connection, name: str, params: dict[str, Any]) -> list[Any]:
        """One of the serving reads (_serving_reads) straight on the driver's cursor: compiled once
        per store, rows as the driver's tuples, none of SQLAlchemy's per-call result machinery
        (the serving path runs a few of these per call)."""
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = self._compiled[name] = self._reads[name].compile(dialect=c.dialect)
        values = {**compiled.params, **params}  # the statement's own literals, then the call's values
        args: Any = tuple(values[k] for k in compiled.positiontup) if compiled.positional else values
        cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.string, args)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def get_learner_records(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, LearnerRecord]:
        ids = sorted(set(learner_ids))
        e = t.events.c
        studied: dict[str, dict[str, int]] = {}
        with self._tx(write=False) as c:
            learners = self._learners(c, tenant, ids)
            for chunk in _chunks(ids):
                modules = (
                    sa.select(e.learner_id, e.module_id, sa.func.count())
                    .where(e.tenant_id == tenant)
                    .where(e.learner_id.in_(chunk))
                    .where(_studies_module())
                    .group_by(e.learner_id, e.module_id)
                )
                for learner_id, module_id, count in c.execute(modules).tuples():
                    studied.setdefault(learner_id, {})[module_id] = int(count)
            states = self._states(c, tenant, ids, None)
        return {
            learner_id: LearnerRecord(
                learner,
                tuple(sorted(states.get(learner_id, {}).values(), key=lambda s: s.skill_id)),
                studied.get(learner_id, {}),
            )
            for learner_id, learner in learners.items()
        }

    def _learner_and_states(
        self, tenant: str, learner_id: str, columns: str, *, studied: bool = False
    ) -> tuple[Any, list[SkillState], dict[str, int]] | None:
        """The learner's row (`columns`: "learner" or "profile_updated"), states sorted by skill
        and, if asked, how many times they studied each module, all read in one transaction."""
        params = {"tenant": tenant, "learner": learner_id}
        with self._tx(write=False) as c:
            row = c.execute(self._reads[columns], params).first()
            if row is None:
                return None
            states = [_state_from_values(*r) for r in c.execute(self._reads["states"], params).tuples()]
            modules = {m: int(n) for m, n in c.execute(self._reads["studied"], params).tuples()} if studied else {}
        return row, states, modules

    def iter_learners(self, tenant: str | None = None) -> Iterator[tuple[str, Learner]]:
        after = ("", "")
        while True:
            query = sa.select(t.learners).order_by(t.learners.c.tenant_id, t.learners.c.learner_id)
            if tenant is not None:
                query = query.where(t.learners.c.tenant_id == tenant)
            query = query.where(
                sa.tuple_(t.learners.c.tenant_id, t.learners.c.learner_id)
                > sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            ).limit(5000)
            with self._tx(write=False) as c:
                rows = c.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield row.tenant_id, _learner_from_row(row)
            after = (rows[-1].tenant_id, rows[-1].learner_id)

    def count_learners(self) -> int:
        with self._tx(write=False) as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t.learners)).scalar_one())

    def learners_version(self, tenant: str) -> tuple[int, int, int]:
        c_ = t.learners.c
        query = sa.select(sa.func.count(), sa.func.max(c_.updated_us), sa.func.max(c_.profile_updated_us)).where(
            c_.tenant_id == tenant
        )
        with self._tx(write=False) as c:
            count, updated, profiled = c.execute(query).one()
        return int(count), int(updated or 0), int(profiled or 0)

    def changed_learners(self, tenant: str, since_us: int) -> list[str]:
        c_ = t.learners.c
        query = (
            sa.select(c_.learner_id)
            .where(c_.tenant_id == tenant)
            .where(sa.or_(c_.updated_us > since_us, c_.profile_updated_us > since_us))
            .order_by(c_.learner_id)
        )
        with self._tx(write=False) as c:
            return [str(x) for x in c.execute(query).scalars()]

    def delete_learner(self, tenant: str, learner_id: str, now: datetime | None = None) -> tuple[bool, int]:
        erased_us = to_micros(now or datetime.now(UTC))
        with self._tx(write=True) as c:
            existed = self._lock_learners(c, tenant, [learner_id])
            c.execute(t.erasures.insert().values(subject=erasure_subject(tenant, learner_id), erased_us=erased_us))
            events_deleted = c.execute(
                t.events.delete().where(t.events.c.tenant_id == tenant).where(t.events.c.learner_id == learner_id)
            ).rowcount
            c.execute(
                t.skill_states.delete()
                .where(t.skill_states.c.tenant_id == tenant)
                .where(t.skill_states.c.learner_id == learner_id)
            )
            c.execute(
                t.learners.delete().where(t.learners.c.tenant_id == tenant).where(t.learners.c.learner_id == learner_id)
            )
            c.execute(
                t.shared_paths.delete()
                .where(t.shared_paths.c.tenant_id == tenant)
                .where(t.shared_paths.c.learner_id == learner_id)
            )
        if existed or events_deleted:
            self._checkpoint()
        return bool(existed), int(events_deleted)

    def _checkpoint(self) -> None:
        """SQLite: rebuild the file, then copy the WAL into it and truncate the WAL. secure_delete
        zeroes what a delete frees, but a b-tree page can keep, in its unallocated space, stale
        copies of cells that a split moved elsewhere; only a rebuild (VACUUM) leaves no page with
        the learner's values (the erasure test greps the file). It costs time in proportion to the
        store's size, with writers waiting."""
        if self.dialect != "sqlite":
            return
        with self._write_lock:
            raw = self.engine.raw_connection()  # outside any transaction: neither can run inside one
            try:
                cursor = raw.cursor()
                cursor.execute("VACUUM")
                for _attempt in range(50):
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    row = cursor.fetchone()
                    if not (row and row[0]):
                        break
                    time.sleep(0.02)  # a reader still holds an older snapshot
                else:
                    log.warning("the WAL checkpoint after an erasure was blocked by readers; the next one completes it")
                cursor.close()
            finally:
                raw.close()

    def erased_since(self, since: datetime) -> set[str]:
        with self._tx(write=False) as c:
            rows = c.execute(sa.select(t.erasures.c.subject).where(t.erasures.c.erased_us >= to_micros(since)))
            return {r.subject for r in rows}

    def _lock_learners(self, c: Connection | Any, tenant: str, learner_ids: Sequence[str]) -> dict[str, int | None]:
        """Lock the learners' rows in id order (PostgreSQL); those that exist, with the time
        their profile was last updated (microseconds)."""
        known: dict[str, int | None] = {}
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        for chunk in _chunks(sorted(set(learner_ids))):
            sql = (f"SELECT learner_id, profile_updated_us FROM {t.learners.name} WHERE tenant_id = {self._mark} "
                   f"AND learner_id IN ({self._marks(len(chunk))}) ORDER BY learner_id{lock}")  # fmt: skip
            known.update(self._query(c, sql, (tenant, *chunk)))  # (learner_id, profile_updated_us) pairs
        return known

    def _known_learners(self, c: Any, tenant: str, learner_ids: Sequence[str]) -> dict[str, int | None]:
        """SQLite's _lock_learners for a batch, without the profile times: the learners that exist,
        read as one row per chunk (their ids joined), not one row each (a row costs a retake of
        the interpreter lock). An id never holds the separator: ids are checked before a write."""
        known: dict[str, int | None] = {}
        for chunk in _chunks(sorted(set(learner_ids))):
            sql = (f"SELECT group_concat(learner_id, char(31)) FROM {t.learners.name} WHERE tenant_id = ? "
                   f"AND learner_id IN ({self._marks(len(chunk))})")  # fmt: skip
            ((joined,),) = self._query(c, sql, (tenant, *chunk))
            if joined:
                known.update(dict.fromkeys(joined.split("\x1f")))
        return known

    def _marks(self, n: int) -> str:
        return ", ".join([self._mark] * n)

    def _query(self, c: Connection | Any, sql: str, args: Sequence[Any]) -> list[Any]:
        """A statement straight on the driver's cursor, its rows as the driver's tuples: the
        writer's statements are simple and run once per transaction, and SQLAlchemy's per-statement
        work (compiling an IN list, building result rows) cost more than running them."""
        cursor = _driver(c).cursor()
        try:
            cursor.execute(sql, tuple(args))
            return list(cursor.fetchall()) if cursor.description is not None else []
        finally:
            cursor.close()

    # assessments ----------------------------------------------------------------------------
    def record_events(
        self, tenant: str, events: Sequence[AssessmentEvent], updater: Updater, now: datetime
    ) -> list[EventOutcome]:
        return self.record_event_groups([(tenant, events)], updater, now)[0].outcomes

    def record_event_groups(
        self,
        groups: Sequence[tuple[str, Sequence[AssessmentEvent]]],
        updater: Updater,
        now: datetime,
        *,
        with_profiles: bool = False,
    ) -> list[RecordedGroup]:
        results = [RecordedGroup([EventOutcome.ACCEPTED] * len(events), {}) for _, events in groups]
        by_tenant: dict[str, list[int]] = {}  # each tenant's groups, in order
        for g, (tenant, _) in enumerate(groups):
            by_tenant.setdefault(tenant, []).append(g)
        if not by_tenant:
            return results
        now_us = to_micros(now)
        with self._sqlite_write() if self.dialect == "sqlite" else self._tx(write=True) as c:
            for tenant in sorted(by_tenant):  # one lock order for every writer (PostgreSQL)
                placed = by_tenant[tenant]
                events = [e for g in placed for e in groups[g][1]]
                found, profiles = self._record(c, tenant, events, updater, now_us, with_profiles)
                start = 0
                for g in placed:  # each group's outcomes, a slice of the tenant's in order
                    end = start + len(groups[g][1])
                    results[g].outcomes[:] = found[start:end]
                    if profiles:
                        for e in groups[g][1]:
                            if e.learner_id in profiles:
                                results[g].profiles[e.learner_id] = profiles[e.learner_id]
                    start = end
        return results

    def _record(
        self,
        c: Connection | Any,
        tenant: str,
        events: Sequence[AssessmentEvent],
        updater: Updater,
        now_us: int,
        with_profiles: bool,
    ) -> tuple[list[EventOutcome], dict[str, tuple[list[SkillState], datetime | None]]]:
        cached = not with_profiles and self.dialect == "sqlite"
        whole = with_profiles and self.dialect == "sqlite"  # the writer's cache, whole profiles
        learner_ids = [e.learner_id for e in events]
        if cached:
            known = self._known_learners(c, tenant, learner_ids)
        elif whole:
            known = self._profiled_learners(c, tenant, learner_ids)
        else:
            known = self._lock_learners(c, tenant, learner_ids)
        fingerprints = self._fingerprints(c, tenant, [e.event_id for e in events])
        touched_skills = sorted({s for e in events if e.learner_id in known for s in e.skill_ids})
        states: dict[str, dict[str, SkillState | None]]
        if cached or whole:
            states = self._cached_states(c, tenant, known, None if whole else touched_skills)
        else:
            states = self._states(c, tenant, sorted(known), None if with_profiles else touched_skills)  # type: ignore[assignment]
        outcomes: list[EventOutcome] = []
        new_rows: list[tuple[Any, ...]] = []
        dirty: dict[tuple[str, str], SkillState] = {}
        # once per ingested result: names bound once, its row built in place (_EVENT_COLUMNS' order)
        outcome, row = outcomes.append, new_rows.append
        accepted, duplicate, conflict = EventOutcome.ACCEPTED, EventOutcome.DUPLICATE, EventOutcome.CONFLICT
        for e in events:
            event_id, learner_id = e.event_id, e.learner_id
            fingerprint = e.fingerprint()
            previous = fingerprints.get(event_id)
            if previous is not None:
                outcome(duplicate if previous == fingerprint else conflict)
                continue
            if learner_id not in known:
                outcome(EventOutcome.UNKNOWN_LEARNER)
                continue
            fingerprints[event_id] = fingerprint
            current = states.get(learner_id)
            if current is None:
                current = states[learner_id] = {}
            touched = {s: state for s in e.skill_ids if (state := current.get(s)) is not None}
            for state in updater(touched, e):
                current[state.skill_id] = state
                dirty[(learner_id, state.skill_id)] = state
            row((tenant, event_id, learner_id, e.module_id, e.item_id, ",".join(e.skill_ids), e.score,
                 to_micros(e.occurred_at), e.duration_seconds, now_us, fingerprint, int(e.kind)))  # fmt: skip
            outcome(accepted)
        if new_rows:
            self._executemany(c, "insert events", t.events.insert, _EVENT_COLUMNS, new_rows)
            self._upsert_states(c, tenant, dirty)
            for chunk in _chunks(sorted({k[0] for k in dirty})):
                sql = (f"UPDATE {t.learners.name} SET profile_updated_us = {self._mark} WHERE tenant_id = {self._mark} "
                       f"AND learner_id IN ({self._marks(len(chunk))})")  # fmt: skip
                self._query(c, sql, (now_us, tenant, *chunk))
            if self._profiled:  # batches too: a whole profile held stays as committed
                for learner_id, _ in dirty:
                    if (tenant, learner_id) in self._profiled:
                        self._profiled[(tenant, learner_id)] = now_us
        profiles: dict[str, tuple[list[SkillState], datetime | None]] = {}
        if with_profiles:
            updated_learners = {k[0] for k in dirty}
            for learner_id, updated_us in known.items():
                at = now_us if learner_id in updated_learners else updated_us
                held = states.get(learner_id, {}).values()
                profiles[learner_id] = (
                    sorted((s for s in held if s is not None), key=lambda s: s.skill_id),
                    from_micros(at) if at is not None else None,
                )
            if self._state_cache:  # what the writer keeps of these learners stays as committed
                for (learner_id, skill_id), state in dirty.items():
                    entry = self._state_cache.get((tenant, learner_id))
                    if entry is not None:
                        entry[skill_id] = state
        return outcomes, profiles

    def _cached_states(
        self, c: Any, tenant: str, known: dict[str, int | None], skill_ids: Sequence[str] | None
    ) -> dict[str, dict[str, SkillState | None]]:
        """The SQLite writer's _states: the learners' states of `skill_ids` (None where a learner
        has none), or with None their whole profiles (the learner is then held whole: a single
        result's commit answers with it), read only for learners the writer does not already hold
        them of. The entries returned are the cache's own, so what the transaction updates in them
        is kept."""
        cache, profiled = self._state_cache, self._profiled
        wanted = None if skill_ids is None else set(skill_ids)
        states: dict[str, dict[str, SkillState | None]] = {}
        missing: list[str] = []
        for learner_id in sorted(known):
            key = (tenant, learner_id)
            entry = cache.get(key)
            if entry is not None and (key in profiled if wanted is None else entry.keys() >= wanted):
                states[learner_id] = entry
            else:
                missing.append(learner_id)
        if not missing:
            return states
        if len(cache) + len(missing) > STATE_CACHE_LEARNERS:
            self._clear_states()  # a bound on memory; the learners of this transaction are read again
            states, missing = {}, sorted(known)
        read = self._states(c, tenant, missing, skill_ids)
        absent = dict.fromkeys(skill_ids or ())
        for learner_id in missing:
            key = (tenant, learner_id)
            entry = cache.setdefault(key, {})
            entry.update(absent)
            entry.update(read.get(learner_id, {}))
            states[learner_id] = entry
            if skill_ids is None:
                profiled[key] = known[learner_id]
        return states

    def _profiled_learners(self, c: Any, tenant: str, learner_ids: Sequence[str]) -> dict[str, int | None]:
        """The SQLite writer's _lock_learners for single results: a learner whose whole profile it
        holds is known without a read (a row costs a retake of the interpreter lock, and the
        writer's cycle is what every caller waits for)."""
        known: dict[str, int | None] = {}
        missing: list[str] = []
        profiled = self._profiled
        for learner_id in sorted(set(learner_ids)):
            key = (tenant, learner_id)
            if key in profiled:
                known[learner_id] = profiled[key]
            else:
                missing.append(learner_id)
        if missing:
            known.update(self._lock_learners(c, tenant, missing))
        return known

    def _fingerprints(self, c: Connection | Any, tenant: str, event_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(set(event_ids))):
            sql = (f"SELECT event_id, fingerprint FROM {t.events.name} WHERE tenant_id = {self._mark} "
                   f"AND event_id IN ({self._marks(len(chunk))})")  # fmt: skip
            found.update(self._query(c, sql, (tenant, *chunk)))
        return found

    def _states(
        self, c: Connection | Any, tenant: str, learner_ids: Sequence[str], skill_ids: Sequence[str] | None
    ) -> dict[str, dict[str, SkillState]]:
        states: dict[str, dict[str, SkillState]] = {}
        if skill_ids is not None and not skill_ids:
            return states
        columns = _STATE_COLUMN_NAMES
        for chunk in _chunks(learner_ids):
            sql = (f"SELECT learner_id, {columns} FROM {t.skill_states.name} WHERE tenant_id = {self._mark} "
                   f"AND learner_id IN ({self._marks(len(chunk))})")  # fmt: skip
            args: list[Any] = [tenant, *chunk]
            if skill_ids is not None and len(skill_ids) <= _IN_CHUNK:
                sql += f" AND skill_id IN ({self._marks(len(skill_ids))})"
                args += skill_ids
            for row in self._query(c, sql, args):
                states.setdefault(row[0], {})[row[1]] = _state_from_values(*row[1:])
        return states

    def _upsert_states(self, c: Connection | Any, tenant: str, dirty: dict[tuple[str, str], SkillState]) -> None:
        def upsert() -> Any:
            stmt = self._insert(t.skill_states)
            return stmt.on_conflict_do_update(
                index_elements=["tenant_id", "learner_id", "skill_id"],
                set_={
                    "mastery": stmt.excluded.mastery,
                    "attempts": stmt.excluded.attempts,
                    "last_practiced_us": stmt.excluded.last_practiced_us,
                    "studies_since_check": stmt.excluded.studies_since_check,
                    "studied": stmt.excluded.studied,
                },
            )

        rows = [
            (tenant, learner_id, skill_id, state.mastery, state.attempts, to_micros(state.last_practiced_at),
             state.studies_since_check, state.studied)
            for (learner_id, skill_id), state in sorted(dirty.items())
        ]  # fmt: skip
        self._executemany(c, "upsert skill states", upsert, _STATE_ROW_COLUMNS, rows)

    def get_skill_states(self, tenant: str, learner_id: str) -> tuple[list[SkillState], datetime | None] | None:
        found = self._learner_and_states(tenant, learner_id, "profile_updated")
        if found is None:
            return None
        row, states, _ = found
        return states, from_micros(row.profile_updated_us) if row.profile_updated_us is not None else None

    def get_skill_states_many(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, list[SkillState]]:
        with self._tx(write=False) as c:
            states = self._states(c, tenant, sorted(set(learner_ids)), None)
        return {k: sorted(v.values(), key=lambda s: s.skill_id) for k, v in states.items()}

    def events_of(self, tenant: str, learner_id: str) -> list[AssessmentEvent]:
        with self._tx(write=False) as c:
            rows = c.execute(
                sa.select(t.events)
                .where(t.events.c.tenant_id == tenant)
                .where(t.events.c.learner_id == learner_id)
                .order_by(t.events.c.seq)
            ).all()
        return [_event_from_row(r) for r in rows]

    def iter_events(self, tenant: str | None = None) -> Iterator[tuple[str, AssessmentEvent]]:
        after = 0
        while True:
            query = sa.select(t.events).where(t.events.c.seq > after).order_by(t.events.c.seq).limit(20_000)
            if tenant is not None:
                query = query.where(t.events.c.tenant_id == tenant)
            with self._tx(write=False) as c:
                rows = c.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield row.tenant_id, _event_from_row(row)
            after = rows[-1].seq

    def count_events(self, tenant: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.events)
        if tenant is not None:
            query = query.where(t.events.c.tenant_id == tenant)
        with self._tx(write=False) as c:
            return int(c.execute(query).scalar_one())

    # model registry -------------------------------------------------------------------------
    def record_activation(self, version: str, now: datetime, tenant: str = DEFAULT_TENANT) -> None:
        with self._tx(write=True) as c:
            c.execute(
                t.model_activations.insert().values(version=version, activated_us=to_micros(now), tenant_id=tenant)
            )

    def activation_history(self, tenant: str = DEFAULT_TENANT) -> list[tuple[str, datetime]]:
        a = t.model_activations.c
        with self._tx(write=False) as c:
            rows = c.execute(sa.select(t.model_activations).where(a.tenant_id == tenant).order_by(a.seq)).all()
        return [(r.version, from_micros(r.activated_us)) for r in rows]

    # training jobs --------------------------------------------------------------------------
    def save_training_job(self, job: TrainingJob) -> None:
        values = {
            "tenant_id": job.tenant,
            "state": job.state,
            "progress": float(job.progress),
            "message": job.message,
            "model_version": job.model_version,
            "activated": int(job.activated),
            "started_us": to_micros(job.started_at),
            "finished_us": to_micros(job.finished_at) if job.finished_at is not None else None,
            "updated_us": to_micros(job.updated_at or job.started_at),
            "metrics": json.dumps(dict(job.metrics), sort_keys=True),
        }
        j = t.training_jobs.c
        with self._tx(write=True) as c:
            updated = c.execute(t.training_jobs.update().where(j.job_id == job.job_id).values(**values)).rowcount
            if not updated:
                c.execute(t.training_jobs.insert().values(job_id=job.job_id, **values))

    def training_job(self, tenant: str, job_id: str) -> TrainingJob | None:
        j = t.training_jobs.c
        with self._tx(write=False) as c:
            row = c.execute(
                sa.select(t.training_jobs).where(j.job_id == job_id).where(j.tenant_id == tenant)
            ).one_or_none()
        return _training_job(row) if row is not None else None

    def training_jobs(self, tenant: str, limit: int = 50) -> list[TrainingJob]:
        j = t.training_jobs.c
        query = sa.select(t.training_jobs).where(j.tenant_id == tenant)
        with self._tx(write=False) as c:
            rows = c.execute(query.order_by(j.started_us.desc(), j.job_id).limit(limit)).all()
        return [_training_job(r) for r in rows]


def _training_job(row: Any) -> TrainingJob:
    return TrainingJob(
        job_id=row.job_id,
        started_at=from_micros(row.started_us),
        tenant=row.tenant_id,
        state=row.state,
        progress=float(row.progress),
        message=row.message,
        model_version=row.model_version,
        activated=bool(row.activated),
        finished_at=from_micros(row.finished_us) if row.finished_us is not None else None,
        metrics={str(k): float(v) for k, v in json.loads(row.metrics).items()},
        updated_at=from_micros(row.updated_us),
    )


# a learner's read: None (unknown), the read when nothing needs planning, or the version with the
# rows to build the record from (states, studied modules)
_Read: TypeAlias = LearnerRead | tuple[tuple[Any, ...], list[SkillState], dict[str, int]] | None


def _learner_read(
    run: Callable[[str], list[Any]], name: str, learner_id: str, known: object | None, shared: SharedPathKey | None
) -> _Read:
    """The statements of get_learner_record_if_changed, inside one read transaction."""
    rows = run(name)
    if not rows:
        return None
    unchanged = _unchanged(rows[0], learner_id, known, shared)
    if unchanged is not None:
        return unchanged
    states = [_state_from_values(*r) for r in run("states")]
    studied = {m: int(n) for m, n in run("studied")}
    return tuple(rows[0][:5]), states, studied


def _created_us(version: object) -> int | None:
    """When the learner a version was read from was created (versions are this store's tuples)."""
    return int(version[1]) if isinstance(version, tuple) and len(version) == 5 else None


def _unchanged(
    row: Sequence[Any], learner_id: str, known: object | None, shared: SharedPathKey | None
) -> LearnerRead | None:
    """From a version row ("version" or "version_shared"): the read when the version is `known`,
    or when the stored path was planned from it (by the planner `shared` names); else None."""
    version = tuple(row[:5])
    if version == known:
        return LearnerRead(version, None)
    if shared is not None and row[5] is not None:
        key = version_key(version)
        if row[5] == key:
            return LearnerRead(
                version, None, SharedPath(learner_id, shared, version, from_micros(row[6]), bytes(row[7]))
            )
    return None


def _serving_reads() -> dict[str, Any]:
    """One learner's reads on the serving path, with bound parameters `tenant` and `learner`."""
    tenant: Any = sa.bindparam("tenant")
    learner: Any = sa.bindparam("learner")
    x, s, e, p = t.learners.c, t.skill_states.c, t.events.c, t.shared_paths.c
    return {
        "learner": sa.select(t.learners).where(x.tenant_id == tenant).where(x.learner_id == learner),
        "profile_updated": sa.select(x.profile_updated_us).where(x.tenant_id == tenant).where(x.learner_id == learner),
        "states": sa.select(*_state_columns())
        .where(s.tenant_id == tenant)
        .where(s.learner_id == learner)
        .order_by(s.skill_id),
        "version": sa.select(
            x.body,
            x.created_us,
            x.updated_us,
            x.profile_updated_us,
            sa.select(sa.func.max(e.seq)).where(e.tenant_id == tenant).where(e.learner_id == learner).scalar_subquery(),
        )
        .where(x.tenant_id == tenant)
        .where(x.learner_id == learner),
        "version_shared": sa.select(
            x.body,
            x.created_us,
            x.updated_us,
            x.profile_updated_us,
            sa.select(sa.func.max(e.seq)).where(e.tenant_id == tenant).where(e.learner_id == learner).scalar_subquery(),
            p.version_key,
            p.generated_us,
            p.body,
        )
        .select_from(
            t.learners.outerjoin(
                t.shared_paths,
                sa.and_(
                    p.tenant_id == x.tenant_id,
                    p.learner_id == x.learner_id,
                    p.request_key == sa.bindparam("request"),
                    p.planner_key == sa.bindparam("planner"),
                    p.generated_us >= sa.bindparam("since"),
                ),
            )
        )
        .where(x.tenant_id == tenant)
        .where(x.learner_id == learner),
        "last_seq": sa.select(sa.func.max(e.seq)),
        "learners_since": sa.select(e.tenant_id, e.learner_id)
        .where(e.seq > sa.bindparam("since"))
        .where(e.seq <= sa.bindparam("upto"))
        .distinct()
        .limit(sa.bindparam("limit")),
        "studied": sa.select(e.module_id, sa.func.count())
        .where(e.tenant_id == tenant)
        .where(e.learner_id == learner)
        .where(_studies_module())
        .group_by(e.module_id),
    }


def _studies_module() -> sa.ColumnElement[bool]:
    """AssessmentEvent.studies_module, in SQL: a module assessment, sent as one or inferred."""
    e = t.events.c
    return sa.or_(e.kind == int(ResultKind.MODULE_ASSESSMENT), sa.and_(e.kind == 0, e.item_id == ""))


def _catalog_parts(rows: Sequence[Any]) -> tuple[list[Skill], list[Module], list[TargetRole]]:
    problems: list[Any] = []
    parts: dict[str, list[Any]] = {"skill": [], "module": [], "role": []}
    readers = {"skill": skill_from_reader, "module": module_from_reader, "role": role_from_reader}
    for row in rows:
        reader = _Reader(json.loads(row.body), f"{row.kind}:{row.entry_id}", problems)
        parts[row.kind].append(readers[row.kind](reader))
    return parts["skill"], parts["module"], parts["role"]


def _shared_catalog(rows: Sequence[Any], revision: int) -> Catalog:
    if not rows:
        return Catalog(skills={}, modules={}, roles={}, revision=revision)
    return build_catalog(*_catalog_parts(rows), revision)


def _catalog_rows(
    skills: Iterable[Skill], modules: Iterable[Module], roles: Iterable[TargetRole]
) -> list[dict[str, Any]]:
    entries = [
        *(("skill", v.skill_id, skill_to_dict(v)) for v in skills),
        *(("module", v.module_id, module_to_dict(v)) for v in modules),
        *(("role", v.role_id, role_to_dict(v)) for v in roles),
    ]
    return [{"kind": kind, "entry_id": k, "body": json.dumps(body)} for kind, k, body in entries]


def _state_columns() -> tuple[sa.ColumnElement[Any], ...]:
    """A skill state's columns, in _state_from_values's order: rows are read as plain tuples
    (skipping Row attribute access, a per-row cost on ingest's state reads)."""
    s = t.skill_states.c
    return (s.skill_id, s.mastery, s.attempts, s.last_practiced_us, s.studies_since_check, s.studied)


_STATE_COLUMN_NAMES = "skill_id, mastery, attempts, last_practiced_us, studies_since_check, studied"  # _state_columns()


def _state_from_values(
    skill_id: str, mastery: float, attempts: int, practiced_us: int, studies: int, studied: bool | int
) -> SkillState:
    return skill_state(skill_id, mastery, attempts, from_micros(practiced_us), studies, bool(studied))


def _learner_from_row(row: Any) -> Learner:
    learner = learner_from_dict(json.loads(row.body))
    return replace(learner, created_at=from_micros(row.created_us), updated_at=from_micros(row.updated_us))


_EVENT_COLUMNS = ("tenant_id", "event_id", "learner_id", "module_id", "item_id", "skill_ids", "score", "occurred_us",
                  "duration_seconds", "recorded_us", "fingerprint", "kind")  # fmt: skip
_STATE_ROW_COLUMNS = ("tenant_id", "learner_id", "skill_id", "mastery", "attempts", "last_practiced_us",
                      "studies_since_check", "studied")  # fmt: skip


def _event_from_row(row: Any) -> AssessmentEvent:
    return AssessmentEvent(
        event_id=row.event_id,
        learner_id=row.learner_id,
        module_id=row.module_id,
        item_id=row.item_id,
        skill_ids=tuple(row.skill_ids.split(",")) if row.skill_ids else (),
        score=row.score,
        occurred_at=from_micros(row.occurred_us),
        duration_seconds=row.duration_seconds,
        kind=ResultKind(row.kind),
    )


def _driver(c: Connection | Any) -> Any:
    """The driver's connection under `c` (a Connection), or `c` itself (already the driver's)."""
    return c.connection.dbapi_connection if isinstance(c, Connection) else c


SQLITE_ROWS_PER_STATEMENT = 256  # rows of one multi-row VALUES statement, at most


def _sqlite_rows(driver: Any, cursor: Any, sql: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """executemany as multi-row statements (`sql`'s one VALUES group repeated, up to
    SQLITE_ROWS_PER_STATEMENT rows each): the same rows, applied in the same order, with the same
    conflict handling. The driver runs each statement in one step without the interpreter lock
    and takes the lock back once per statement, where executemany takes it back after every row:
    under load each retake may wait for another thread's switch interval."""
    group = "(" + ", ".join(["?"] * width) + ")"
    head, found, tail = sql.partition(group)
    if not found or group in tail:
        cursor.executemany(sql, rows)
        return
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(SQLITE_ROWS_PER_STATEMENT, limit // width))
    full = head + ",".join([group] * per) + tail
    values = itertools.chain.from_iterable
    end = len(rows) - len(rows) % per
    for start in range(0, end, per):
        cursor.execute(full, list(values(rows[start : start + per])))
    if end < len(rows):
        rest = rows[end:]
        cursor.execute(head + ",".join([group] * len(rest)) + tail, list(values(rest)))


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return text[:200]
