"""Learner and skill-profile use cases: register, read, erase, record assessments."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from recommender.domain.assessment import AssessmentEvent, validate_events
from recommender.domain.ids import require_id
from recommender.domain.learner import Learner, validate_learner
from recommender.domain.profile import SkillProfile, SkillState, skill_state
from recommender.errors import AlreadyExists, InvalidInput, LubanError, NotFound
from recommender.kt.bkt import BKTModel, mastery_now, profile_updater
from recommender.service.catalog import CatalogService
from recommender.service.clock import Clock
from recommender.service.commit import Committed, GroupCommitter
from recommender.service.relay import CommitRelay, RelayedCommits
from recommender.storage.store import EventOutcome, Store, Updater


@dataclass(frozen=True)
class Rejection:
    """One result of a bulk import that was not stored."""

    index: int
    event_id: str
    error: LubanError

    @property
    def field(self) -> str:
        if isinstance(self.error, InvalidInput) and self.error.violations:
            return self.error.violations[0].field
        return getattr(self.error, "field", "")


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected.extend(other.rejected)


@dataclass(frozen=True)
class _CheckedBatch:
    """A batch validated for writing: when it was received, its valid results by index, and the
    rejections found so far."""

    now: datetime
    valid: list[tuple[int, AssessmentEvent]]
    rejected: list[Rejection]


class LearnerService:
    def __init__(
        self,
        store: Store,
        catalogs: CatalogService,
        bkt: Callable[[str], BKTModel],
        clock: Clock,
        future_tolerance: timedelta = timedelta(minutes=5),
        forget: Callable[[str, str], int] = lambda _tenant, _learner: 0,
        on_result: Callable[[str, str], None] = lambda _tenant, _learner: None,
    ) -> None:
        """`on_result(tenant, learner_id)`: told after a single result was stored (not for batches),
        to plan the learner's next path ahead (PathService.learner_changed); it must not block."""
        self._store = store
        self._on_result = on_result
        self._forget = forget
        self._catalogs = catalogs
        self._bkt = bkt
        self._clock = clock
        self._future_tolerance = future_tolerance
        self._committer = GroupCommitter(store, self._updater, clock)
        self._commit_one: Callable[[str, AssessmentEvent], Committed] = self._committer.record
        self._relay: CommitRelay | RelayedCommits | None = None

    def _updater(self, tenant: str) -> Updater:
        """The profile update for the tenant's model and catalog (a module's skill weights)."""
        return profile_updater(self._bkt(tenant), self._catalogs.current(tenant).skill_weights_of)

    def share_commits(self, address: str, authkey: bytes, *, serve: bool) -> None:
        """One writer for every process of a server (service/relay.py): this process's committer
        serves the others at `address` (`serve`), or this process sends its results there."""
        if serve:
            self._relay = CommitRelay(self._committer, address, authkey)
        else:
            relayed = RelayedCommits(address, authkey, self._committer)
            self._relay, self._commit_one = relayed, relayed.record

    def close(self) -> None:
        if self._relay is not None:
            self._relay.close()  # a relay answers what it read, while its committer still runs
        self._committer.close()

    # learners -------------------------------------------------------------------------------
    def upsert(self, tenant: str, learner: Learner) -> Learner:
        learner = validate_learner(learner, self._catalogs.current(tenant))
        return self._store.upsert_learner(tenant, learner, self._clock())

    def upsert_many(self, tenant: str, learners: Sequence[Learner], *, placeholders: bool = False) -> None:
        """`placeholders`: learners known only from their events (ids only, no languages yet)."""
        catalog = self._catalogs.current(tenant)
        valid = [validate_learner(x, catalog, require_languages=not placeholders) for x in learners]
        self._store.upsert_learners(tenant, valid, self._clock())

    def get(self, tenant: str, learner_id: str) -> Learner:
        learner = self._store.get_learner(tenant, require_id("learner_id", learner_id))
        if learner is None:
            raise NotFound("learner", learner_id, field="learner_id")
        return learner

    def delete(self, tenant: str, learner_id: str) -> tuple[bool, int, int]:
        """Erase the learner from the store, then from every stored model of the tenant, in this
        call: (existed, events deleted, model versions updated). The store keeps a hashed record of
        the erasure, so a training run that read the learner before it drops them too."""
        existed, events = self._store.delete_learner(tenant, require_id("learner_id", learner_id), self._clock())
        return existed, events, self._forget(tenant, learner_id)

    # assessments ----------------------------------------------------------------------------
    def record(self, tenant: str, event: AssessmentEvent) -> tuple[SkillProfile, bool]:
        """Store one result and update the profile: (profile now, duplicate)."""
        now = self._clock()
        (checked,) = validate_events([event], self._catalogs.require(tenant), now, self._future_tolerance)
        if isinstance(checked, InvalidInput):
            raise checked
        committed = self._commit_one(tenant, checked)
        if committed.outcome is EventOutcome.UNKNOWN_LEARNER or committed.states is None:
            raise NotFound("learner", event.learner_id, field="result.learner_id")
        if committed.outcome is EventOutcome.CONFLICT:
            raise AlreadyExists(
                f"event {event.event_id!r} was already recorded with a different payload",
                field="result.event_id",
            )
        profile = project_profile(event.learner_id, committed.states, committed.updated_at, self._bkt(tenant), now)
        if committed.outcome is EventOutcome.ACCEPTED:
            self._on_result(tenant, event.learner_id)
        return profile, committed.outcome is EventOutcome.DUPLICATE

    def record_batch(self, tenant: str, events: Sequence[AssessmentEvent], first_index: int = 0) -> IngestResult:
        """Store a batch in one transaction; each bad result is rejected alone."""
        return self._write_batch(tenant, self._check_batch(tenant, events, first_index))

    def record_stream(
        self, tenant: str, batches: Iterable[Callable[[], Sequence[AssessmentEvent]]]
    ) -> Iterator[IngestResult]:
        """record_batch of each batch in turn (indices counted within each batch), one result per
        batch, in order, once its transaction committed. A batch is a function giving its events
        (a message to map): this thread only reads the stream, while one writer thread maps,
        validates and writes what was read, so the two never contend for the interpreter over
        Python work (that contention cost more than overlapping them gained). The writer takes
        every batch read while it wrote the last ones (up to STREAM_TRANSACTION results) into one
        transaction, as group commit does, so one sync serves several; batches are applied in
        order, each result as record_batch gives it. A failure is raised when its batch's result
        is due, and no batch after it is written; when reading the stream fails, the batches read
        before it are written first."""
        check = functools.partial(self._check_events, tenant)
        with _StreamWriter(check, functools.partial(self._write_batches, tenant)) as writer:
            for batch in batches:
                writer.put(batch)
                yield from writer.written()
            writer.finish()
            while results := writer.written():
                yield from results

    def _check_events(self, tenant: str, events_of: Callable[[], Sequence[AssessmentEvent]]) -> _CheckedBatch:
        return self._check_batch(tenant, events_of(), 0)

    def _write_batches(self, tenant: str, batches: Sequence[_CheckedBatch]) -> list[IngestResult]:
        """Several validated batches in one transaction, each with its own result (their results'
        recorded time is the last batch's)."""
        groups = [(tenant, [e for _, e in b.valid]) for b in batches]
        recorded = self._store.record_event_groups(groups, self._updater(tenant), batches[-1].now)
        return [_ingest_result(b, r.outcomes) for b, r in zip(batches, recorded, strict=True)]

    def _check_batch(self, tenant: str, events: Sequence[AssessmentEvent], first_index: int) -> _CheckedBatch:
        now = self._clock()
        catalog = self._catalogs.require(tenant)
        rejected: list[Rejection] = []
        valid: list[tuple[int, AssessmentEvent]] = []
        checked = validate_events(events, catalog, now, self._future_tolerance)
        for index, (event, found) in enumerate(zip(events, checked, strict=True), first_index):
            if isinstance(found, InvalidInput):
                rejected.append(Rejection(index, event.event_id, found))
            else:
                valid.append((index, found))
        return _CheckedBatch(now, valid, rejected)

    def _write_batch(self, tenant: str, batch: _CheckedBatch) -> IngestResult:
        valid = batch.valid
        outcomes = self._store.record_events(tenant, [e for _, e in valid], self._updater(tenant), batch.now)
        return _ingest_result(batch, outcomes)

    def profile(self, tenant: str, learner_id: str, as_of: datetime | None = None) -> SkillProfile:
        """Masteries as of `as_of` (default now), forgetting applied."""
        found = self._store.get_skill_states(tenant, require_id("learner_id", learner_id))
        if found is None:
            raise NotFound("learner", learner_id, field="learner_id")
        states, updated_at = found
        return project_profile(learner_id, states, updated_at, self._bkt(tenant), as_of or self._clock())

    def profiles(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, SkillProfile]:
        """Profiles of many learners as of now (learners without any state get empty ones)."""
        now = self._clock()
        model = self._bkt(tenant)
        states = self._store.get_skill_states_many(tenant, learner_ids)
        return {lid: project_profile(lid, states.get(lid, []), None, model, now) for lid in learner_ids}


def _ingest_result(batch: _CheckedBatch, outcomes: Sequence[EventOutcome]) -> IngestResult:
    result = IngestResult(rejected=list(batch.rejected))
    for (index, event), outcome in zip(batch.valid, outcomes, strict=True):
        if outcome is EventOutcome.ACCEPTED:
            result.accepted += 1
        elif outcome is EventOutcome.DUPLICATE:
            result.duplicates += 1
        elif outcome is EventOutcome.UNKNOWN_LEARNER:
            result.rejected.append(
                Rejection(index, event.event_id, NotFound("learner", event.learner_id, "result.learner_id"))
            )
        else:
            result.rejected.append(
                Rejection(
                    index,
                    event.event_id,
                    AlreadyExists(
                        f"event {event.event_id!r} was already recorded with a different payload", "result.event_id"
                    ),
                )
            )
    result.rejected.sort(key=lambda r: r.index)
    return result


STREAM_TRANSACTION = 4000  # results a stream's writer takes into one transaction (at least one batch)
STREAM_AHEAD = 8  # batches read ahead of the writer before reading the stream waits for it


class _StreamWriter:
    """The writer thread of one stream (LearnerService.record_stream): takes the batches put
    since its last transaction, in order, validates them (`check`) and writes them in the next
    one (`write`); the results come back in order through written(). The thread runs in a copy
    of the caller's context (the call's deadline)."""

    def __init__(
        self,
        check: Callable[[Callable[[], Sequence[AssessmentEvent]]], _CheckedBatch],
        write: Callable[[Sequence[_CheckedBatch]], list[IngestResult]],
    ) -> None:
        self._check = check
        self._write = write
        self._ready = threading.Condition()
        self._queue: list[Callable[[], Sequence[AssessmentEvent]]] = []
        self._results: list[IngestResult] = []
        self._error: BaseException | None = None
        self._finishing = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name="luban-ingest", daemon=True)
        self._thread.start()

    def __enter__(self) -> _StreamWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        """However the stream ended, what was put is written (or failed) before this returns."""
        self.finish()

    def put(self, batch: Callable[[], Sequence[AssessmentEvent]]) -> None:
        """Queue a batch, once at most STREAM_AHEAD wait for the writer."""
        with self._ready:
            while len(self._queue) >= STREAM_AHEAD and self._error is None:
                self._ready.wait()
            if self._error is None:
                self._queue.append(batch)
                self._ready.notify_all()

    def written(self) -> list[IngestResult]:
        """The results committed since the last call, in order; the writer's failure once every
        result before it was returned."""
        with self._ready:
            results, self._results = self._results, []
            if not results and self._error is not None:
                raise self._error
            return results

    def finish(self) -> None:
        """Wait until every batch put is written, or the writer failed."""
        with self._ready:
            self._finishing = True
            self._ready.notify_all()
        self._thread.join()

    def _next(self, wait: bool) -> Callable[[], Sequence[AssessmentEvent]] | None:
        with self._ready:
            while wait and not self._queue and not self._finishing:
                self._ready.wait()
            if not self._queue:
                return None
            self._ready.notify_all()  # room for the reader
            return self._queue.pop(0)

    def _run(self) -> None:
        try:
            while (batch := self._next(wait=True)) is not None:
                checked: list[_CheckedBatch] = []
                failed: BaseException | None = None
                try:
                    while batch is not None:
                        checked.append(self._check(batch))
                        if sum(len(c.valid) for c in checked) >= STREAM_TRANSACTION:
                            break
                        batch = self._next(wait=False)
                except BaseException as exc:  # the batches before it are still written
                    failed = exc
                results = self._write(checked) if checked else []
                with self._ready:
                    self._results.extend(results)
                    self._ready.notify_all()
                if failed is not None:
                    raise failed
        except BaseException as exc:
            with self._ready:
                self._error = exc
                self._queue = []
                self._ready.notify_all()


def project_profile(
    learner_id: str,
    states: Sequence[SkillState],
    updated_at: datetime | None,
    model: BKTModel,
    as_of: datetime,
) -> SkillProfile:
    """Stored states brought forward to `as_of` (forgetting); never backwards in time."""
    projected = tuple(
        skill_state(
            s.skill_id,
            mastery_now(s, model.of(s.skill_id), as_of) if as_of > s.last_practiced_at else s.mastery,
            s.attempts,
            s.last_practiced_at,
            s.studies_since_check,
            s.studied,
        )
        for s in states
    )
    return SkillProfile(learner_id, projected, updated_at, as_of)
