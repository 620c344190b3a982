"""The storage interface the service layer depends on (and tests run against both backends)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.catalog import Catalog, Module, Skill, TargetRole
from recommender.domain.jobs import TrainingJob
from recommender.domain.learner import Learner
from recommender.domain.profile import LearnerRecord, SkillState

DEFAULT_TENANT = "default"
LEGACY_TENANT = ""  # model activations from before models belonged to a tenant


def erasure_subject(tenant: str, learner_id: str) -> str:
    """How an erasure is remembered: a hash of the tenant and id, so the record of an erasure does
    not itself hold the id it erased."""
    return hashlib.sha256(f"luban-erasure\0{tenant}\0{learner_id}".encode()).hexdigest()


# Pure function from the touched skills' current states (absent = never practiced) and one
# event to the new states of those skills. The store calls it inside the write transaction.
Updater = Callable[[Mapping[str, SkillState], AssessmentEvent], Sequence[SkillState]]


class EventOutcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same event id, same payload: nothing changed
    CONFLICT = "conflict"  # same event id, different payload: nothing changed
    UNKNOWN_LEARNER = "unknown_learner"


@dataclass(frozen=True)
class RecordedGroup:
    outcomes: list[EventOutcome]
    # learner id -> (states sorted by skill, profile updated_at), when asked for
    profiles: dict[str, tuple[list[SkillState], datetime | None]]


@dataclass(frozen=True)
class SharedPathKey:
    """Which stored path a read may serve: the request's and the planner's digests."""

    request_key: str
    planner_key: str


@dataclass(frozen=True)
class SharedPath:
    """A planned path as stored for every process: the evidence version it was planned from
    (as the store read it: opaque) and the serving layer's encoding of it."""

    learner_id: str
    key: SharedPathKey
    version: object
    generated_at: datetime
    body: bytes


@dataclass(frozen=True)
class LearnerRead:
    """get_learner_record_if_changed: the evidence version, and the record or a stored path."""

    version: object
    record: LearnerRecord | None
    shared: SharedPath | None = None


def version_key(version: object) -> str:
    """A digest of an evidence version, to compare across processes (stores use it)."""
    return hashlib.blake2b(repr(version).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class TenantCatalog:
    """A tenant's own catalog entries, as stored: valid only together with the shared catalog
    when `inherits`, on their own otherwise."""

    skills: list[Skill]
    modules: list[Module]
    roles: list[TargetRole]
    inherits: bool


class Store(Protocol):
    """Every method is one transaction. Errors: StoreUnavailable, Conflict (see errors.py)."""

    def create_schema(self) -> None:
        """Create or upgrade the schema to the current version (idempotent)."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def close(self) -> None: ...

    @property
    def one_writer(self) -> bool:
        """Whether every process writing this store takes one lock to write (a SQLite file): their
        single results are better committed by one of them (service/relay.py)."""

    # catalog ------------------------------------------------------------------------------
    def load_catalog(self) -> Catalog:
        """The stored catalog (EMPTY_CATALOG, revision 0, when none was loaded)."""

    def catalog_revision(self) -> int: ...

    def save_catalog(self, catalog: Catalog, expected_revision: int) -> None:
        """Replace the stored shared catalog; Conflict if another writer changed any catalog since.
        The revision counts every catalog write, shared or a tenant's."""

    def load_tenant_catalog(self, tenant: str) -> tuple[Catalog, TenantCatalog | None]:
        """The shared catalog (with the current revision) and the tenant's own entries (None when
        the tenant has none), read in one transaction."""

    def save_tenant_catalog(self, tenant: str, own: TenantCatalog, revision: int, expected_revision: int) -> None:
        """Replace the tenant's own entries and inheritance, setting the revision; Conflict if any
        catalog changed since `expected_revision`."""

    def tenant_catalogs(self) -> dict[str, TenantCatalog]:
        """Every tenant's own catalog (to check a shared change against those that inherit it)."""

    # learners -----------------------------------------------------------------------------
    def upsert_learner(self, tenant: str, learner: Learner, now: datetime) -> Learner: ...

    def upsert_learners(self, tenant: str, learners: Sequence[Learner], now: datetime) -> None: ...

    def get_learner(self, tenant: str, learner_id: str) -> Learner | None: ...

    def get_learners(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, Learner]: ...

    def get_learner_record(self, tenant: str, learner_id: str) -> LearnerRecord | None:
        """The learner, their states and studied modules, read in one transaction; None if unknown."""

    def get_learner_record_if_changed(
        self,
        tenant: str,
        learner_id: str,
        known: object | None,
        shared: SharedPathKey | None = None,
        shared_since: datetime | None = None,
    ) -> LearnerRead | None:
        """The evidence version and the record read in one transaction, the record None when the
        version equals `known` (nothing a path depends on changed) or when `shared` names a stored
        path planned from this very version, at `shared_since` or later (then returned instead);
        None for an unknown learner.
        Versions are opaque and compare equal only when the learner's row and results are the same."""

    def results_since(self, seq: int | None, limit: int) -> tuple[int, list[tuple[str, str]]]:
        """(the last event seq, each (tenant, learner) with results after `seq` once, at most `limit`);
        `seq` None: none, only the last seq. For planning ahead in every process (PlanAhead),
        which does not need to see every result: on PostgreSQL a transaction may commit a lower
        seq after a higher one is seen."""

    def put_shared_paths(self, tenant: str, paths: Sequence[SharedPath]) -> None:
        """Store paths for every process to serve (replacing the learner's earlier one for the
        same request), except those of learners erased (or erased and created again) since
        their version was read: an erased learner's paths are not written back. A cache, so a
        caller may drop a failed write."""

    def get_learner_records(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, LearnerRecord]:
        """get_learner_record for many learners, all read in one transaction; unknown ids are absent."""

    def iter_learners(self, tenant: str | None = None) -> Iterator[tuple[str, Learner]]:
        """(tenant, learner) pairs, by tenant then id."""

    def count_learners(self) -> int: ...

    def learners_version(self, tenant: str) -> tuple[int, int, int]:
        """(learners, latest learner change, latest profile change; microseconds) of the tenant: it
        changes whenever a learner is added, changed, erased or assessed, so a view computed from
        the tenant's learners knows when it is stale."""

    def changed_learners(self, tenant: str, since_us: int) -> list[str]:
        """Ids of the tenant's learners added, changed or assessed after `since_us` (microseconds,
        as learners_version reports them)."""

    def delete_learner(self, tenant: str, learner_id: str, now: datetime | None = None) -> tuple[bool, int]:
        """Erase a learner, their states and events, and record the erasure (erasure_subject, not
        the id; `now` defaults to the current time): (existed, events deleted). On SQLite, when
        something was deleted, the file is rebuilt and the WAL checkpointed, so no page of the
        store file keeps the learner's values."""

    def erased_since(self, since: datetime) -> set[str]:
        """erasure_subject of every learner erased at or after `since`."""

    # assessments ---------------------------------------------------------------------------
    def record_events(
        self, tenant: str, events: Sequence[AssessmentEvent], updater: Updater, now: datetime
    ) -> list[EventOutcome]:
        """Store events and apply `updater` to their learners' states, all in one transaction,
        serialized per learner. Events of the batch are applied in the order given."""

    def record_event_groups(
        self,
        groups: Sequence[tuple[str, Sequence[AssessmentEvent]]],
        updater: Updater,
        now: datetime,
        *,
        with_profiles: bool = False,
    ) -> list[RecordedGroup]:
        """record_events for several (tenant, events) groups in one transaction (group commit:
        one durable sync for many callers); a result per group, in order. Events are applied in
        group order; a failure fails every group. `with_profiles`: each result also carries its
        learners' whole states as committed (what get_skill_states would return next)."""

    def get_skill_states(self, tenant: str, learner_id: str) -> tuple[list[SkillState], datetime | None] | None:
        """(states sorted by skill, profile updated_at), or None for an unknown learner."""

    def get_skill_states_many(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, list[SkillState]]: ...

    def events_of(self, tenant: str, learner_id: str) -> list[AssessmentEvent]:
        """A learner's events in the order they were applied."""

    def iter_events(self, tenant: str | None = None) -> Iterator[tuple[str, AssessmentEvent]]:
        """(tenant, event) pairs in application order, streamed."""

    def count_events(self, tenant: str | None = None) -> int:
        """Every tenant's events, or one tenant's."""

    # model registry -------------------------------------------------------------------------
    def record_activation(self, version: str, now: datetime, tenant: str = DEFAULT_TENANT) -> None: ...

    def activation_history(self, tenant: str = DEFAULT_TENANT) -> list[tuple[str, datetime]]:
        """The tenant's activated versions, oldest first; the last one is active (LEGACY_TENANT:
        activations recorded before models had tenants)."""

    # training jobs --------------------------------------------------------------------------
    def save_training_job(self, job: TrainingJob) -> None:
        """Insert or replace the job (keyed by job_id)."""

    def training_job(self, tenant: str, job_id: str) -> TrainingJob | None:
        """The tenant's job; None when it does not exist or is another tenant's."""

    def training_jobs(self, tenant: str, limit: int = 50) -> list[TrainingJob]:
        """The tenant's most recent jobs, newest first."""
