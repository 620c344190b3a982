"""One group-commit writer for every server process on SQLite.

A durable commit costs one sync, and SQLite takes one writer at a time. With a writer per process,
the processes' commits take turns (storage's WriterLock), each carrying only its own process's
callers: N processes pay N syncs for what one commit could carry. So the other processes hand
their single results to one process's GroupCommitter over a local socket (`CommitRelay` serves
it, `RelayedCommits` sends to it), and every concurrent caller of the server shares one commit
(docs/decisions/0014-one-writer-process.md).

The relay is an optimization, never a second path to the truth: a process that cannot reach it
commits locally, as before (WriterLock keeps that correct). A result the relay never read (its
socket refused, or closed before the request was read) is committed locally; the relay answers
every request it read before it closes. The socket is in Linux's abstract namespace (nothing to
clean up after a crash) and a connection must prove it knows the server's random key.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
import time
from contextlib import suppress
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from recommender.domain.assessment import AssessmentEvent, ResultKind, from_micros, to_micros
from recommender.domain.profile import SkillState
from recommender.errors import Conflict, StoreUnavailable
from recommender.service.commit import Committed, GroupCommitter, Waiter
from recommender.storage.store import EventOutcome

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # after a failed connection, commit locally this long before trying again


def relay_address(supervisor_pid: int) -> str:
    """The relay's socket, one per server (named by its supervisor), in the abstract namespace."""
    return f"\0luban-commit-relay-{supervisor_pid}"


class _Unanswered(Exception):
    """The relay closed before it read the request: nothing was committed, commit it locally."""


class CommitRelay:
    """Serves a process's GroupCommitter to the server's other processes."""

    def __init__(self, committer: GroupCommitter, address: str, authkey: bytes) -> None:
        self._committer = committer
        self._listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="luban-relay-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed
                return
            except Exception as exc:  # a peer without the key, or one that hung up during the handshake
                log.warning("commit relay refused a connection: %s", exc)
                continue
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                thread = threading.Thread(target=self._serve, args=(conn,), name="luban-relay", daemon=True)
                self._connections.append(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: Connection) -> None:
        """Read requests until the peer or close() ends the connection; answer each when its
        commit completes (a group's answers in one message, sent by the writer after the group),
        and every one read before closing."""
        outbox: list[tuple[int, bool, object]] = []
        sending = threading.Lock()
        unanswered = 0
        answered = threading.Condition()

        def answer(request_id: int, committed: Committed | None, exc: BaseException | None) -> None:
            if committed is not None:
                reply: tuple[int, bool, object] = (request_id, True, _packed(committed))
            else:
                reply = (request_id, False, _error(exc or StoreUnavailable("the commit gave no outcome")))
            with sending:
                outbox.append(reply)

        def flush() -> None:
            nonlocal unanswered
            with sending:
                if not outbox:
                    return
                replies = outbox[:]
                outbox.clear()
                with suppress(OSError, ValueError):  # the peer is gone: it learns nothing more
                    conn.send_bytes(_encoded(replies))
            with answered:
                unanswered -= len(replies)
                answered.notify_all()

        self._committer.after_each_group(flush)
        try:
            while True:
                try:
                    request_id, tenant, packed = _decoded(conn.recv_bytes())
                    event = _event_unpacked(packed)
                except (EOFError, OSError, ValueError, TypeError):  # gone, or not a request: hang up
                    break
                with answered:
                    unanswered += 1
                try:
                    self._committer.submit(tenant, event, functools.partial(answer, request_id))
                except Exception as exc:  # the committer is closed
                    answer(request_id, None, exc)
                    flush()
        finally:
            with answered:  # every request read is answered before the socket closes
                answered.wait_for(lambda: unanswered == 0)
            self._committer.after_each_group(flush, add=False)
            with sending:
                conn.close()

    def close(self) -> None:
        """Stop reading, answer every request read, then return (before the committer closes)."""
        with self._lock:
            self._closed = True
            connections, threads = list(self._connections), list(self._threads)
        self._listener.close()
        for conn in connections:
            _shutdown(conn, socket.SHUT_RD)  # the reader sees the end; replies can still be sent
        for thread in threads:
            thread.join()


class RelayedCommits:
    """The committer of a process whose writes go to the relay: `record` as GroupCommitter's,
    falling back to the process's own committer when the relay cannot take the result."""

    def __init__(self, address: str, authkey: bytes, local: GroupCommitter) -> None:
        self._address = address
        self._authkey = authkey
        self._local = local
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pending: dict[int, Waiter] = {}
        self._next_id = 0
        self._down_until = 0.0
        self._closed = False

    def record(self, tenant: str, event: AssessmentEvent) -> Committed:
        outcome = self._send(tenant, event)
        if outcome is not None:
            try:
                return outcome.wait()
            except _Unanswered:
                pass
        return self._local.record(tenant, event)

    def _send(self, tenant: str, event: AssessmentEvent) -> Waiter | None:
        """The request's wait, or None when the relay cannot take it (commit locally)."""
        with self._lock:
            if self._closed:
                return None
            conn = self._conn
            if conn is None:
                if time.monotonic() < self._down_until:
                    return None
                try:
                    conn = self._conn = Client(self._address, family="AF_UNIX", authkey=self._authkey)
                except (OSError, EOFError, AuthenticationError) as exc:  # not up (yet), stopped, or not ours
                    log.debug("commit relay unreachable: %s", exc)
                    self._down_until = time.monotonic() + RETRY_SECONDS
                    return None
                threading.Thread(target=self._read, args=(conn,), name="luban-relay-reply", daemon=True).start()
            self._next_id += 1
            request_id = self._next_id
            outcome = Waiter()
            self._pending[request_id] = outcome
            try:
                conn.send_bytes(_encoded((request_id, tenant, _event_packed(event))))
            except (OSError, ValueError):
                self._pending.pop(request_id, None)
                self._drop(conn)
                return None
            return outcome

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                replies = _decoded(conn.recv_bytes())
            except (EOFError, OSError, ValueError):
                break
            with self._lock:
                found = [(self._pending.pop(request_id, None), ok, payload) for request_id, ok, payload in replies]
            for outcome, ok, payload in found:
                if outcome is None:
                    continue
                if ok:
                    outcome(_unpacked(payload), None)
                else:
                    outcome(None, _rebuilt(payload))
        with self._lock:
            self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        """(Under the lock.) The connection is gone: every request still unanswered was not read by
        the relay, which answers all it read before it closes; commit those locally."""
        if self._conn is conn:
            self._conn = None
            self._down_until = time.monotonic() + RETRY_SECONDS
        pending, self._pending = self._pending, {}
        for outcome in pending.values():
            outcome(None, _Unanswered())
        with suppress(OSError):
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn = self._conn
        if conn is not None:
            _shutdown(conn, socket.SHUT_WR)  # the relay answers what it read, then hangs up


def _shutdown(conn: Connection, how: int) -> None:
    """shutdown(2) on the connection's socket (a duplicate descriptor of the same socket)."""
    with suppress(OSError, ValueError):
        sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.shutdown(how)
        finally:
            sock.close()


_Packed = tuple[str, list[tuple[str, float, int, int, int, bool]] | None, int | None]


def _packed(committed: Committed) -> _Packed:
    """A commit's outcome in plain values (JSON on the socket): encoding dataclasses and datetimes
    would cost several times as much, on the writer's thread."""
    states = committed.states
    return (
        committed.outcome.value,
        None if states is None else [
            (s.skill_id, s.mastery, s.attempts, to_micros(s.last_practiced_at), s.studies_since_check, s.studied)
            for s in states
        ],
        None if committed.updated_at is None else to_micros(committed.updated_at),
    )  # fmt: skip


def _unpacked(packed: _Packed) -> Committed:
    outcome, states, updated_us = packed
    return Committed(
        EventOutcome(outcome),
        None if states is None else [SkillState(k, m, a, from_micros(t), n, d) for k, m, a, t, n, d in states],
        None if updated_us is None else from_micros(updated_us),
    )


def _event_packed(e: AssessmentEvent) -> tuple[object, ...]:
    return (e.event_id, e.learner_id, e.module_id, e.score, to_micros(e.occurred_at), e.skill_ids, e.item_id,
            e.duration_seconds, e.occurred_at_sent, int(e.kind))  # fmt: skip


def _event_unpacked(packed: tuple[Any, ...]) -> AssessmentEvent:
    event_id, learner_id, module_id, score, occurred_us, skill_ids, item_id, duration, sent, kind = packed
    return AssessmentEvent(event_id, learner_id, module_id, score, from_micros(occurred_us), tuple(skill_ids),
                           item_id, duration, sent, ResultKind(kind))  # fmt: skip


def _encoded(message: object) -> bytes:
    """Messages are plain values in JSON, never pickles: what arrives on the socket is data, never
    code, whoever managed to send it."""
    return json.dumps(message, separators=(",", ":")).encode()


def _decoded(data: bytes) -> Any:
    return json.loads(data)


def _error(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc)


def _rebuilt(error: tuple[str, str]) -> Exception:
    """The relay's error as the caller's: what a local commit would have raised."""
    kind, message = error
    if kind == "Conflict":
        return Conflict(message)
    if kind == "StoreUnavailable":
        return StoreUnavailable(message)
    return RuntimeError(f"the commit relay failed: {kind}: {message}")
