"""Group commit for single assessment results.

A durable commit costs one fsync (SQLite FULL sync, PostgreSQL WAL flush), and on SQLite writers
take turns. So concurrent RecordAssessment calls do not each commit: they queue, and one writer
thread commits everything queued so far in one transaction (Store.record_event_groups), then
wakes each caller with its own outcome. Under load a commit carries many results; alone, a result
commits at once. Nothing is acknowledged before its transaction has committed
(docs/decisions/0006-group-commit.md).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.profile import SkillState
from recommender.errors import StoreUnavailable
from recommender.service.clock import Clock
from recommender.storage.store import EventOutcome, Store, Updater

log = logging.getLogger(__name__)

MAX_GROUP_EVENTS = 256


@dataclass(frozen=True)
class Committed:
    """A result's outcome, and its learner's states as committed (none for an unknown learner)."""

    outcome: EventOutcome
    states: list[SkillState] | None
    updated_at: datetime | None


Done = Callable[[Committed | None, BaseException | None], None]
"""Told a result's outcome once its transaction committed (or the error, when it failed)."""


class Waiter:
    """One blocked caller's wait for its outcome: a lock taken at creation and released once the
    outcome is set. A Future costs more on the threads every caller waits for: its condition is
    taken by the setter and again by each waiter on waking (where the waiter, woken while the setter
    still holds it, sleeps a second time), and each wait allocates a lock and a waiter list entry."""

    __slots__ = ("_error", "_lock", "_value")

    def __init__(self) -> None:
        self._value: Committed | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._lock.acquire()

    def __call__(self, value: Committed | None, error: BaseException | None) -> None:
        """Set the outcome (once) and wake the caller."""
        self._value, self._error = value, error
        self._lock.release()

    def wait(self) -> Committed:
        """The outcome, once set (its error raised)."""
        self._lock.acquire()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


@dataclass(frozen=True, slots=True)
class _Pending:
    tenant: str
    event: AssessmentEvent
    done: Done


class GroupCommitter:
    def __init__(self, store: Store, updater: Callable[[str], Updater], clock: Clock) -> None:
        self._store = store
        self._updater = updater
        self._clock = clock
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._after_group: tuple[Callable[[], None], ...] = ()

    def after_each_group(self, callback: Callable[[], None], *, add: bool = True) -> None:
        """Call `callback` on the writer thread after each group's outcomes are all set (the commit
        relay sends a group's answers together); `add=False` removes it."""
        with self._lock:
            hooks = [h for h in self._after_group if h is not callback]
            self._after_group = (*hooks, callback) if add else tuple(hooks)

    def record(self, tenant: str, event: AssessmentEvent) -> Committed:
        """Blocks until the result's transaction has committed (or failed: the error is raised)."""
        waiter = Waiter()
        self.submit(tenant, event, waiter)
        return waiter.wait()

    def submit(self, tenant: str, event: AssessmentEvent, done: Done) -> None:
        """Queue the result for the next commit; `done` is called with its outcome on the writer
        thread once its transaction has committed (or failed), before the group's
        after_each_group callbacks."""
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the service is shutting down")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="luban-group-commit", daemon=True)
                self._thread.start()
            self._queue.put(_Pending(tenant, event, done))

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < MAX_GROUP_EVENTS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        """One transaction per tenant in the group: each tenant's results are applied with its
        own model's knowledge tracing."""
        by_tenant: dict[str, list[_Pending]] = {}
        for p in group:
            by_tenant.setdefault(p.tenant, []).append(p)
        for tenant, pending in by_tenant.items():
            self._commit_tenant(tenant, pending)
        for callback in self._after_group:
            callback()

    def _commit_tenant(self, tenant: str, group: list[_Pending]) -> None:
        try:
            results = self._store.record_event_groups(
                [(p.tenant, [p.event]) for p in group], self._updater(tenant), self._clock(), with_profiles=True
            )
        except BaseException as exc:  # every caller of the group learns of the failure
            for p in group:
                _tell(p, None, exc)
            return
        for p, found in zip(group, results, strict=True):
            states, updated_at = found.profiles.get(p.event.learner_id, (None, None))
            _tell(p, Committed(found.outcomes[0], states, updated_at), None)


def _tell(p: _Pending, value: Committed | None, error: BaseException | None) -> None:
    """One caller's outcome; a `done` that fails is logged and keeps no other caller waiting."""
    try:
        p.done(value, error)
    except Exception:
        log.exception("a group-commit outcome could not be delivered")
