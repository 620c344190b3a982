"""The deadline of the call a store method serves, so the database gives up when the caller has.

The gRPC layer sets it from the call's own deadline; the store bounds each PostgreSQL transaction's
statements and lock waits by what remains of it (and never by more than the store's timeout). A
stuck database then answers UNAVAILABLE while the caller still listens, instead of holding a
pooled connection and a handler thread long after the caller gave up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# time.monotonic() by which the current call must have finished; None when it has no deadline
CALL_DEADLINE: ContextVar[float | None] = ContextVar("call_deadline", default=None)


@contextmanager
def call_deadline(seconds: float | None) -> Iterator[None]:
    """Store calls inside the block serve a call with `seconds` left (None: no deadline)."""
    token = CALL_DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        CALL_DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left to the current call's deadline (possibly negative), or None."""
    deadline = CALL_DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()
