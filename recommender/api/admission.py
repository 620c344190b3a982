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
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc

from recommender.api.interceptors import SERVICE_PREFIX, _wrap

HEALTH_THREADS = 8  # health checks, their Watch streams and reflection
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]  # generic in grpc-stubs only
else:
    Handler = grpc.RpcMethodHandler


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


class AdmissionInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """The outermost interceptor: routes health and reflection to their own pool and refuses
    service calls beyond `limit` waiting ones."""

    def __init__(self, service_pool: CountingExecutor, limit: int) -> None:
        self._service_pool = service_pool
        self._limit = limit
        self.own_pool = futures.ThreadPoolExecutor(max_workers=HEALTH_THREADS, thread_name_prefix="health")
        self._routed: dict[str, tuple[Handler, Handler]] = {}  # method -> (handler, on the own pool)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:  # fmt: skip
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if not method.startswith(SERVICE_PREFIX):
            found = self._routed.get(method)
            if found is None or found[0] is not handler:  # routed once per method, not per call
                found = self._routed[method] = (handler, self._on_own_pool(handler, lambda b, _streaming: b))
            return found[1]
        if self._service_pool.waiting() < self._limit:
            return handler
        return self._on_own_pool(handler, _refusal)

    def _on_own_pool(
        self, handler: Handler, around: Callable[[Callable[..., Any], bool], Callable[..., Any]]
    ) -> Handler:
        pool = self.own_pool

        def tagged(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            wrapped = around(behaviour, streaming)

            def run(request: Any, context: grpc.ServicerContext) -> Any:
                return wrapped(request, context)

            run.experimental_thread_pool = pool  # type: ignore[attr-defined]
            return run

        routed: Handler = _wrap(handler, tagged)
        return routed

    def close(self) -> None:
        self.own_pool.shutdown(wait=False, cancel_futures=True)


def _refusal(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "the server is at capacity; retry with backoff (health checks are not affected)",
        )

    return refuse
