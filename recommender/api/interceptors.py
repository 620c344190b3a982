"""Server interceptors: telemetry (request id, JSON access log, Prometheus metrics) and
authentication (bearer tokens -> tenant and roles). Both wrap the real handlers, so every
method, including streaming ones, is covered the same way; the wrapping is built once per method
and reads what differs per call (metadata, deadline) from the call's context."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            calls=Counter("luban_rpc", "RPCs by method and status code", ["method", "code"], registry=registry),
            latency=Histogram("luban_rpc_seconds", "RPC latency", ["method"], registry=registry, buckets=BUCKETS),
            in_flight=Gauge("luban_rpc_in_flight", "RPCs being served", registry=registry),
            store_errors=Counter(
                "luban_store_errors", "RPCs failed because the store was unavailable", registry=registry
            ),
        )


def _method(details: grpc.HandlerCallDetails) -> str:
    full: str = details.method  # type: ignore[attr-defined]
    return full.removeprefix(SERVICE_PREFIX) if full.startswith(SERVICE_PREFIX) else full


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


class _PerMethod:
    """Wrapped handlers built once per method, not once per call: grpc hands an interceptor the
    same handler object for a method every time, so the wrapping is reused while it stays the same.
    Only registered methods are kept (an unknown method has no handler), so the table is bounded."""

    def __init__(self, build: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> None:
        self._build = build
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def __call__(self, details: grpc.HandlerCallDetails, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        full: str = details.method  # type: ignore[attr-defined]
        found = self._built.get(full)
        if found is not None and found[0] is handler:
            return found[1]
        wrapped = self._build(_method(details), handler)
        self._built[full] = (handler, wrapped)  # a race builds the same wrapper twice: harmless
        return wrapped


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str):
            return value[:64]
    return ""


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


class TelemetryInterceptor(grpc.ServerInterceptor):
    """Request id (x-request-id, when the caller sends one), one JSON access-log line and metrics
    per call."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._per_method = _PerMethod(self._instrument)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # fmt: skip
        handler = continuation(details)
        if handler is None:
            return None
        return self._per_method(details, handler)

    def _instrument(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        metrics = self._metrics
        bound = _MethodMetrics(metrics, method)
        in_flight = metrics.in_flight
        client_streaming = handler.request_streaming

        def begin(context: grpc.ServicerContext) -> None:
            request_id = _request_id(context)
            REQUEST_ID.set(request_id)  # set on every call: handler threads are reused
            if request_id:
                context.set_trailing_metadata((("x-request-id", request_id),))
            in_flight.inc()

        def finish(context: grpc.ServicerContext, started: float) -> None:
            code = _code_name(context)
            elapsed = time.perf_counter() - started
            bound.calls(code).inc()
            if code == "UNAVAILABLE":
                metrics.store_errors.inc()
            bound.latency.observe(elapsed)
            in_flight.dec()
            log.info("rpc", extra={"rpc": AccessLine(method, code, round(elapsed * 1000, 3), TENANT.get())})

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if isinstance(request, Malformed):
                _refuse_malformed(context, request)
            if client_streaming:
                return _checked(request, context)
            return request

        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            if streaming:

                def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                    begin(context)
                    started = time.perf_counter()
                    left = context.time_remaining()
                    CALL_DEADLINE.set(None if left is None else time.monotonic() + left)  # a generator: no reset
                    try:
                        yield from behaviour(checked(request, context), context)
                    finally:
                        finish(context, started)

                return stream

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                begin(context)
                started = time.perf_counter()
                left = context.time_remaining()
                token = CALL_DEADLINE.set(None if left is None else time.monotonic() + left)
                try:
                    return behaviour(checked(request, context), context)
                finally:
                    CALL_DEADLINE.reset(token)
                    finish(context, started)

            return unary

        return _wrap(handler, around, _lenient(handler.request_deserializer))  # type: ignore[no-any-return]


def _code_name(context: grpc.ServicerContext) -> str:
    code = context.code() if hasattr(context, "code") else None  # type: ignore[attr-defined]
    if code is None:
        return "OK"
    return str(code.name if isinstance(code, grpc.StatusCode) else code)


class AuthInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED without a known bearer token, PERMISSION_DENIED without the method's role;
    the caller's tenant scopes everything the call does."""

    def __init__(self, tokens: TokenBook) -> None:
        self._tokens = tokens
        self._per_method = _PerMethod(self._guard)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # fmt: skip
        handler = continuation(details)
        if handler is None or ROLES_FOR_METHOD.get(_method(details)) is None:
            return handler
        return self._per_method(details, handler)

    def _guard(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        needed = ROLES_FOR_METHOD[method]
        denied = f"{method} needs the role {' or '.join(sorted(needed))}"
        tokens = self._tokens

        def admit(context: grpc.ServicerContext) -> None:
            header = ""
            for key, value in context.invocation_metadata() or ():
                if key == "authorization" and isinstance(value, str):
                    header = value
                    break
            scheme, _, token = header.partition(" ")
            principal = tokens.principal(token.strip()) if scheme.lower() == "bearer" else None
            if principal is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token")
            elif not principal.roles & needed:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
            else:
                TENANT.set(principal.tenant)

        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            if streaming:

                def stream(request: Any, context: grpc.ServicerContext) -> Iterable[Any]:
                    admit(context)
                    yield from behaviour(request, context)

                return stream

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                admit(context)
                return behaviour(request, context)

            return unary

        return _wrap(handler, around)  # type: ignore[no-any-return]


class AccessLine:
    """A call's access-log fields (the `rpc` of its record). One is written per call, so the JSON
    line is put together from parts escaped once per method, code and tenant rather than by
    json.dumps of a fresh dict; `fields()` gives the same fields to any other formatter."""

    __slots__ = ("code", "method", "ms", "tenant")
    _escaped: ClassVar[dict[str, str]] = {}  # a bounded set of strings: methods, codes, tenants

    def __init__(self, method: str, code: str, ms: float, tenant: str) -> None:
        self.method, self.code, self.ms, self.tenant = method, code, ms, tenant

    def fields(self) -> dict[str, Any]:
        return {"method": self.method, "code": self.code, "ms": self.ms, "tenant": self.tenant}

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields().get(key, default)

    def json(self, ts: str, request_id: str) -> str:
        e = self._escape
        rid = f', "request_id": {json.dumps(request_id, ensure_ascii=False)}' if request_id else ""
        return (
            f'{{"ts": "{ts}", "level": "INFO", "logger": "{log.name}", "msg": "rpc"{rid}, '
            f'"method": {e(self.method)}, "code": {e(self.code)}, "ms": {self.ms!r}, "tenant": {e(self.tenant)}}}'
        )

    @classmethod
    def _escape(cls, value: str) -> str:
        found = cls._escaped.get(value)
        if found is None:
            found = json.dumps(value, ensure_ascii=False)
            if len(cls._escaped) < 10_000:
                cls._escaped[value] = found
        return found


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
