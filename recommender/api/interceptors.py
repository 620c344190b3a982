"""The server's interceptor: admission, authentication (bearer tokens -> tenant and roles) and
telemetry (request id, JSON access log, Prometheus metrics). It wraps the real handlers, so every
method, including streaming ones, is covered the same way; the wrapping is built once per method
and reads what differs per call (metadata, deadline) from the call's context."""

from __future__ import annotations

import contextvars
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from recommender.api.admission import Admission
from recommender.service.auth import TokenBook
from recommender.storage.deadline import CALL_DEADLINE
from recommender.storage.store import DEFAULT_TENANT

log = logging.getLogger("recommender.access")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default=DEFAULT_TENANT)
SERVICE_PREFIX = "/luban.path.v1.LearningPathService/"

# Which role may call which method; methods not listed (health, reflection) need no token.
ROLES_FOR_METHOD: dict[str, frozenset[str]] = {
    **{m: frozenset({"platform"}) for m in (
        "UpsertLearner", "GetLearner", "RecordAssessment", "RecordAssessments", "GetSkillProfile",
        "RecommendPath", "GeneratePaths")},
    **{m: frozenset({"ml"}) for m in ("ListModels", "ActivateModel", "TrainModel", "GetTrainingJob")},
    **{m: frozenset({"admin"}) for m in ("UpsertCatalog", "DeleteLearner")},
    "GetCatalog": frozenset({"platform", "ml", "admin"}),
    "UpsertSharedCatalog": frozenset({"operator"}),
    "GetSharedCatalog": frozenset({"platform", "ml", "admin", "operator"}),
}  # fmt: skip


BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    calls: Counter
    latency: Histogram
    in_flight: Gauge
    store_errors: Counter
    active: set[Any]  # the calls being served (their contexts): in_flight is its size when scraped

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        registry = registry or CollectorRegistry()
        active: set[Any] = set()  # adding and discarding take no lock of their own, unlike a gauge's inc/dec
        in_flight = Gauge("luban_rpc_in_flight", "RPCs being served", registry=registry)
        in_flight.set_function(lambda: len(active))
        return cls(
            registry=registry,
            calls=Counter("luban_rpc", "RPCs by method and status code", ["method", "code"], registry=registry),
            latency=Histogram("luban_rpc_seconds", "RPC latency", ["method"], registry=registry, buckets=BUCKETS),
            in_flight=in_flight,
            store_errors=Counter(
                "luban_store_errors", "RPCs failed because the store was unavailable", registry=registry
            ),
            active=active,
        )


def _wrap(
    handler: grpc.RpcMethodHandler,
    around: Callable[[Callable[..., Any], bool], Callable[..., Any]],
    deserializer: Callable[[bytes], Any] | None = None,
) -> Any:
    """The same handler with its behaviour wrapped (streaming responses stay lazy), and with
    `deserializer` in place of the handler's own when given."""
    load = deserializer or handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            around(handler.unary_unary, False), load, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            around(handler.unary_stream, True), load, handler.response_serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            around(handler.stream_unary, False), load, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        around(handler.stream_stream, True),  # type: ignore[arg-type]
        load,
        handler.response_serializer,
    )


@dataclass(frozen=True)
class Malformed:
    """A request message that did not parse. grpc answers a deserializer's exception with INTERNAL
    and an ERROR log with a traceback; bytes that are not the method's message are the client's
    mistake, so the deserializer hands this on and the call is refused with INVALID_ARGUMENT."""

    type_name: str
    reason: str


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def load(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or a wrong-typed field
            owner = getattr(deserializer, "__self__", None)
            name = getattr(owner, "__name__", "request")
            return Malformed(name, str(exc)[:200])

    return load


def _refuse_malformed(context: grpc.ServicerContext, request: Malformed) -> None:
    context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request is not a valid {request.type_name} message ({request.reason})",
    )


def _checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Malformed):
            _refuse_malformed(context, request)
        yield request


class _MethodMetrics:
    """One method's metric children, bound once (labels() looks a child up under a lock)."""

    def __init__(self, metrics: Metrics, method: str) -> None:
        self._metrics, self._method = metrics, method
        self.latency = metrics.latency.labels(method)
        self._calls = {"OK": metrics.calls.labels(method, "OK")}

    def calls(self, code: str) -> Any:
        found = self._calls.get(code)
        if found is None:
            found = self._calls[code] = self._metrics.calls.labels(self._method, code)
        return found


_CODE_NAMES: dict[Any, str] = {None: "OK", **{code: code.name for code in grpc.StatusCode}}


def _code_name(context: grpc.ServicerContext) -> str:
    code = context.code() if hasattr(context, "code") else None  # type: ignore[attr-defined]
    found = _CODE_NAMES.get(code)
    if found is not None:
        return found
    return str(code.name if isinstance(code, grpc.StatusCode) else code)


class CallInterceptor(grpc.ServerInterceptor):
    """Admission, authentication and telemetry as one interceptor. grpc walks a continuation per
    interceptor and calls a wrapper per interceptor on every call, so the three are one layer, and
    each method's wrapper is built once (grpc hands an interceptor the same handler object for a
    method every time; only registered methods are kept, so the table is bounded).

    Per call, in this order: the request id (x-request-id, when the caller sends one, returned in
    the trailers); a malformed request refused with INVALID_ARGUMENT; with `tokens`, UNAUTHENTICATED
    without a known bearer token and PERMISSION_DENIED without the method's role (the caller's
    tenant scopes everything the call does); the call's deadline for the store; then, however the
    call ends, one access-log record and the metrics. Health and reflection run on the admission's
    own pool (recommender/api/admission.py); a service call beyond its limit is refused there with
    RESOURCE_EXHAUSTED, before any of this.

    grpc runs each call in a fresh contextvars.Context, so what a call sets (request id, tenant,
    deadline) ends with it and is neither reset nor set to a default."""

    def __init__(self, metrics: Metrics, admission: Admission, tokens: TokenBook | None = None) -> None:
        self._metrics = metrics
        self._admission = admission
        self._tokens = tokens
        # method -> (grpc's handler, the wrapped handler, the refusal when at capacity or None)
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # fmt: skip
        handler = continuation(details)
        if handler is None:
            return None
        full: str = details.method  # type: ignore[attr-defined]
        found = self._built.get(full)
        if found is None or found[0] is not handler:
            found = self._built[full] = self._build(full, handler)  # a race builds it twice: harmless
        refusal = found[2]
        if refusal is not None and self._admission.full():
            return refusal
        return found[1]

    def _build(
        self, full: str, handler: grpc.RpcMethodHandler
    ) -> tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]:
        service = full.startswith(SERVICE_PREFIX)
        method = full.removeprefix(SERVICE_PREFIX)
        load = _lenient(handler.request_deserializer)
        wrapped = _wrap(handler, self._instrument(method, service, handler.request_streaming), load)
        if not service:  # health and reflection: their own threads, never refused
            return handler, wrapped, None
        return handler, wrapped, _wrap(handler, self._admission.refusal, load)

    def _instrument(
        self, method: str, service: bool, client_streaming: bool
    ) -> Callable[[Callable[..., Any], bool], Callable[..., Any]]:
        metrics = self._metrics
        bound = _MethodMetrics(metrics, method)
        latency, active, store_errors = bound.latency, metrics.active, metrics.store_errors
        access = _AccessRecords(method)
        tokens = self._tokens
        needed = ROLES_FOR_METHOD.get(method) if tokens is not None else None
        denied = f"{method} needs the role {' or '.join(sorted(needed))}" if needed else ""
        own_pool = None if service else self._admission.own_pool

        def begin(request: Any, context: grpc.ServicerContext) -> Any:
            """The checks before the call's behaviour (aborting the call when one fails); the
            request as the behaviour takes it."""
            request_id = header = ""
            for key, value in context.invocation_metadata() or ():
                if key == "x-request-id":
                    if not request_id and isinstance(value, str):
                        request_id = value[:64]
                elif key == "authorization" and not header and isinstance(value, str):
                    header = value
            if request_id:
                REQUEST_ID.set(request_id)
                context.set_trailing_metadata((("x-request-id", request_id),))
            if isinstance(request, Malformed):
                _refuse_malformed(context, request)
            if needed is not None:
                scheme, _, token = header.partition(" ")
                principal = tokens.principal(token.strip()) if scheme.lower() == "bearer" else None  # type: ignore[union-attr]
                if principal is None:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token")
                elif not principal.roles & needed:
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
                else:
                    TENANT.set(principal.tenant)
            if service:  # health and reflection never reach the store
                left = context.time_remaining()
                if left is not None:
                    CALL_DEADLINE.set(time.monotonic() + left)
            return _checked(request, context) if client_streaming else request

        def finish(context: grpc.ServicerContext, started: float) -> None:
            elapsed = time.perf_counter() - started
            code = _code_name(context)
            bound.calls(code).inc()
            if code == "UNAVAILABLE":
                store_errors.inc()
            latency.observe(elapsed)
            active.discard(context)
            if log.isEnabledFor(logging.INFO):
                log.handle(access.record(code, round(elapsed * 1000, 3), TENANT.get()))

        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            if streaming:

                def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    started = time.perf_counter()
                    active.add(context)
                    try:
                        yield from behaviour(begin(request, context), context)
                    finally:
                        finish(context, started)

                wrapper: Callable[..., Any] = stream
            else:

                def unary(request: Any, context: grpc.ServicerContext) -> Any:
                    started = time.perf_counter()
                    active.add(context)
                    try:
                        return behaviour(begin(request, context), context)
                    finally:
                        finish(context, started)

                wrapper = unary
            if own_pool is not None:
                wrapper.experimental_thread_pool = own_pool  # type: ignore[attr-defined]  # grpc's per-behaviour pool
            return wrapper

        return around


class _AccessRecords:
    """One method's access-log records. A call makes one, so it is the record logging's own
    Logger.info would make (the same fields, the caller's frame not collected, as
    configure_logging also has it) copied from a template instead of built field by field: the
    record's constructor and Logger.info's path cost more than the rest of a call's telemetry.
    Under a record factory of another's (logging.setLogRecordFactory), logging makes it."""

    def __init__(self, method: str) -> None:
        self._method = method
        template = logging.LogRecord(log.name, logging.INFO, "(unknown file)", 0, "rpc", (), None,
                                     "(unknown function)")  # fmt: skip
        self._start = template.created - template.relativeCreated / 1000  # logging's start time
        self._fields = {**template.__dict__, **dict.fromkeys(_PER_RECORD)}

    def record(self, code: str, ms: float, tenant: str) -> logging.LogRecord:
        line = AccessLine(self._method, code, ms, tenant)
        if logging.getLogRecordFactory() is not logging.LogRecord:
            return log.makeRecord(log.name, logging.INFO, "(unknown file)", 0, "rpc", (), None, extra={"rpc": line})
        record = logging.LogRecord.__new__(logging.LogRecord)
        fields = self._fields.copy()
        fields["created"] = created = time.time()
        fields["msecs"] = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] = (created - self._start) * 1000
        if logging.logThreads:  # the flags as LogRecord reads them (configure_logging turns them off)
            fields["thread"] = threading.get_ident()
            fields["threadName"] = threading.current_thread().name
        if logging.logMultiprocessing:
            fields["processName"] = multiprocessing.current_process().name
        if logging.logProcesses:
            fields["process"] = os.getpid()
        fields["rpc"] = line
        record.__dict__ = fields
        return record


# what LogRecord's constructor sets anew for each record (the rest is the same for every access record)
_PER_RECORD = ("created", "msecs", "relativeCreated", "thread", "threadName", "processName", "process")


class AccessLine:
    """A call's access-log fields (the `rpc` of its record). One is written per call, so the JSON
    line is put together from parts escaped once per method, code and tenant rather than by
    json.dumps of a fresh dict; `fields()` gives the same fields to any other formatter."""

    __slots__ = ("code", "method", "ms", "tenant")
    # (method, code, tenant) -> the line's text before and after "ms": a bounded set (methods, codes, tenants)
    _parts: ClassVar[dict[tuple[str, str, str], tuple[str, str]]] = {}

    def __init__(self, method: str, code: str, ms: float, tenant: str) -> None:
        self.method, self.code, self.ms, self.tenant = method, code, ms, tenant

    def fields(self) -> dict[str, Any]:
        return {"method": self.method, "code": self.code, "ms": self.ms, "tenant": self.tenant}

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields().get(key, default)

    def json(self, ts: str, request_id: str) -> str:
        key = (self.method, self.code, self.tenant)
        parts = self._parts.get(key)
        if parts is None:
            parts = (
                f', "method": {_dumps(self.method)}, "code": {_dumps(self.code)}, "ms": ',
                f', "tenant": {_dumps(self.tenant)}}}',
            )
            if len(self._parts) < 10_000:
                self._parts[key] = parts
        rid = f', "request_id": {_dumps(request_id)}' if request_id else ""
        return f'{{"ts": "{ts}{_ACCESS_HEAD}{rid}{parts[0]}{self.ms!r}{parts[1]}'


_ACCESS_HEAD = f'", "level": "INFO", "logger": "{log.name}", "msg": "rpc"'


def _dumps(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the call that logged it. Messages carry
    ids and codes, never learner attributes."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted: one access line per call

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._second
        if int(record.created) != second:
            stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            self._second = (int(record.created), stamp)
        rpc = getattr(record, "rpc", None)
        if type(rpc) is AccessLine and not record.exc_info:
            return rpc.json(f"{stamp}.{int(record.msecs):03d}", REQUEST_ID.get())
        doc: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            doc["request_id"] = request_id
        if isinstance(rpc, AccessLine):
            doc.update(rpc.fields())
        elif isinstance(rpc, dict):
            doc.update(rpc)
        if record.exc_info:
            doc["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)
