"""Admission: health checks have capacity of their own, and overload is refused at the door.

grpc runs every handler on one thread pool, in arrival order, and its `maximum_concurrent_rpcs`
counts health checks with everything else: under a burst of RecommendPath calls a probe would wait
behind them, or be refused with RESOURCE_EXHAUSTED, and an orchestrator would restart a healthy
instance. So:

- health and reflection run on a small pool of their own (grpc's per-behaviour
  `experimental_thread_pool`), never queued behind service calls;
- a service call that arrives while `limit` calls already wait for a handler thread is refused at
  once with RESOURCE_EXHAUSTED (the refusal also runs on the small pool), so the queue, and the
  wait of every call in it, stays bounded.

The server's interceptor (recommender/api/interceptors.py) applies both, asking `Admission`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

HEALTH_THREADS = 8  # health checks, their Watch streams and reflection


class CountingExecutor(futures.ThreadPoolExecutor):
    """A thread pool that knows how many submitted calls wait for a thread."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._waiting = 0
        self._count_lock = threading.Lock()

    def waiting(self) -> int:
        return self._waiting

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        def started() -> Any:
            with self._count_lock:
                self._waiting -= 1
            return fn(*args, **kwargs)

        with self._count_lock:
            self._waiting += 1
        try:
            return super().submit(started)
        except BaseException:
            with self._count_lock:
                self._waiting -= 1
            raise


class Admission:
    """The health pool (`own_pool`) and the capacity of the service pool: `full()` while `limit`
    service calls wait for a handler thread."""

    def __init__(self, service_pool: CountingExecutor, limit: int) -> None:
        self._service_pool = service_pool
        self._limit = limit
        self.own_pool = futures.ThreadPoolExecutor(max_workers=HEALTH_THREADS, thread_name_prefix="health")

    def full(self) -> bool:
        return self._service_pool.waiting() >= self._limit

    def refusal(self, behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
        """A behaviour (in place of `behaviour`) that refuses the call, run on the own pool."""

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "the server is at capacity; retry with backoff (health checks are not affected)",
            )

        refuse.experimental_thread_pool = self.own_pool  # type: ignore[attr-defined]
        return refuse

    def close(self) -> None:
        self.own_pool.shutdown(wait=False, cancel_futures=True)
