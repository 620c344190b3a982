"""A last-resort bound on a database that stopped answering.

PostgreSQL's statement and lock timeouts are enforced by the server, so they bound a database that
runs but is stuck (a lock, a long query). A server process that does not run at all (frozen,
SIGSTOP, a hung host whose kernel still acknowledges packets) enforces nothing, and neither do TCP
keepalives: the driver waits on its socket for ever. The watchdog severs such a connection (shuts
its socket down) once a transaction has run past its bound; the driver then reports a broken
connection, which the store answers as UNAVAILABLE, and the pool replaces the connection.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass(order=True)
class _Armed:
    due: float
    seq: int
    fd: int = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Watchdog:
    """One daemon thread; `arm` a socket with a bound in seconds, `disarm` it when done."""

    def __init__(self) -> None:
        self._heap: list[_Armed] = []
        self._seq = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, fd: int, seconds: float) -> _Armed:
        entry = _Armed(time.monotonic() + seconds, next(self._seq), fd)
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="luban-store-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()
        return entry

    def disarm(self, entry: _Armed) -> None:
        """After this returns the socket is never severed for `entry` (severing runs under the lock)."""
        with self._condition:
            entry.cancelled = True

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                sever(heapq.heappop(self._heap).fd)


def sever(fd: int) -> None:
    """Shut the connection on socket `fd` down in both directions: a read blocked on it returns at
    once (end of stream). The descriptor itself stays open and owned by the driver."""
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()
