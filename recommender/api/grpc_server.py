"""create_server(): the gRPC server with health, reflection and the Luban Path servicer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from recommender.api.admission import Admission, CountingExecutor
from recommender.api.interceptors import CallInterceptor, Metrics
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.api.servicer import LearningPathServicer
from recommender.errors import LubanError
from recommender.listen import ListenError, check_free, check_tls_pair
from recommender.service.app import App
from recommender.service.auth import TokenBook

log = logging.getLogger("recommender.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LearningPathService"].full_name


class DrainingHealthServicer(health.HealthServicer):
    """grpc's health service, whose Watch streams end once shutdown has told them NOT_SERVING. An
    open Watch (a load balancer's, a kubelet's) is an in-flight call like any other, so without
    this every graceful stop with a watcher connected lasted the whole grace period."""

    def __init__(self) -> None:
        self._open: set[Callable[[Any], None]] = set()
        self._open_lock = threading.Lock()
        super().__init__(experimental_non_blocking=True)

    def Watch(  # noqa: N802 - the generated servicer's method name
        self, request: Any, context: Any, send_response_callback: Callable[[Any], None] | None = None
    ) -> Any:
        # called without a callback when an interceptor wraps the handler (ours do): then the
        # stream is an iterator we hand back, fed through the same callback
        responses = None if send_response_callback is not None else _LatestResponses()
        send = _SendOnceEnded(send_response_callback or cast(_LatestResponses, responses).put)
        with self._open_lock:
            self._open.add(send)
        context.add_callback(lambda: self._forget(send))
        super().Watch(request, context, send)
        return responses

    def _forget(self, send: Callable[[Any], None]) -> None:
        with self._open_lock:
            self._open.discard(send)

    def end_watches(self) -> None:
        """End every open Watch stream with OK (after enter_graceful_shutdown's NOT_SERVING)."""
        with self._open_lock:
            sends, self._open = list(self._open), set()
        for send in sends:
            send(None)


class _LatestResponses:
    """A blocking Watch stream: yields the latest status sent (older ones are superseded), ends
    at put(None)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._latest: Any = None
        self._ended = False

    def put(self, response: Any) -> None:
        with self._condition:
            if response is None:
                self._ended = True
            else:
                self._latest = response
            self._condition.notify()

    def __iter__(self) -> _LatestResponses:
        return self

    def __next__(self) -> Any:
        with self._condition:
            while self._latest is None and not self._ended:
                self._condition.wait()
            if self._latest is None:
                raise StopIteration
            latest, self._latest = self._latest, None
            return latest


class _SendOnceEnded:
    """A Watch stream's send callback that passes nothing on once the stream is ended (None):
    both shutdown and grpc's own close callback end it, and a stream takes one status."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send, self._lock, self._ended = send, threading.Lock(), False

    def __call__(self, response: Any) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = response is None
            self._send(response)


@dataclass
class RunningServer:
    """A started server and its health reporting; stop() drains gracefully."""

    server: grpc.Server
    port: int
    health: DrainingHealthServicer
    app: App
    metrics: Metrics
    admission: Admission | None = None
    health_interval: float = 1.0
    metrics_port: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None
    _metrics_server: Any = None

    def start(self) -> None:
        address = self.app.settings.metrics_address
        if address:
            host, _, port = address.rpartition(":")
            self._metrics_server, _ = start_http_server(int(port), host or "127.0.0.1", registry=self.metrics.registry)
            self.metrics_port = self._metrics_server.server_port
        self.server.start()
        self.refresh_health()
        self._watcher = threading.Thread(target=self._watch, name="health-watch", daemon=True)
        self._watcher.start()

    def refresh_health(self) -> bool:
        """SERVING only while the store answers and a catalog (shared or a tenant's) is loaded."""
        try:
            self.app.store.ping()
            serving = self.app.catalogs.any_loaded()
        except LubanError as exc:
            log.warning("health check failed: %s", exc)
            serving = False
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        if not self._stopping.is_set():
            self.health.set("", status)
            self.health.set(SERVICE_NAME, status)
        return serving

    def _watch(self) -> None:
        while not self._stopping.wait(self.health_interval):
            self.refresh_health()

    def stop(self, grace: float | None = 5.0) -> None:
        """Health NOT_SERVING first (so balancers drain), no new calls, health watchers told and
        let go, then in-flight calls finish (within `grace`)."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        stopped = self.server.stop(grace)
        self.health.end_watches()
        stopped.wait()
        if self.admission is not None:
            self.admission.close()
        if self._watcher is not None:
            self._watcher.join()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def create_server(app: App, address: str | None = None, *, reuse_port: bool = False) -> RunningServer:
    """Bind (not start) a server; port 0 picks a free port, returned in RunningServer.port.
    `reuse_port`: one of several processes serving one port (SO_REUSEPORT: the kernel spreads
    connections over them); the supervisor checked the address and holds it."""
    settings = app.settings
    metrics = Metrics.create()
    metrics.registry.register(AppCollector(app))
    pool = CountingExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc")
    admission = Admission(pool, limit=settings.max_workers * 8)
    tokens = TokenBook.load(settings.auth_tokens_file) if settings.auth_tokens_file is not None else None
    if tokens is None:
        log.warning("AUTHENTICATION IS OFF: every caller acts as tenant 'default' with every role; "
                    "set LUBAN_AUTH_TOKENS_FILE for anything but local development")  # fmt: skip
    server = grpc.server(
        pool,
        interceptors=[CallInterceptor(metrics, admission, tokens)],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
        # no maximum_concurrent_rpcs: it would count health checks too (AdmissionInterceptor bounds the rest)
    )
    pb_grpc.add_LearningPathServiceServicer_to_server(LearningPathServicer(app), server)
    health_servicer = DrainingHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    target = address or settings.address
    if settings.tls_cert_file is not None:
        if settings.tls_key_file is None:
            raise ListenError("LUBAN_TLS_CERT_FILE needs LUBAN_TLS_KEY_FILE")
        check_tls_pair(settings.tls_cert_file, settings.tls_key_file)
        client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
    if not reuse_port:
        check_free(target)
    try:
        if settings.tls_cert_file is not None:
            port = server.add_secure_port(target, credentials)
        else:
            port = server.add_insecure_port(target)
    except RuntimeError as exc:  # grpc's "Failed to bind to address"
        check_free(target)  # in use since the check above: say by whom
        raise ListenError(f"cannot listen on {target}: {exc}") from exc
    if port == 0:
        raise ListenError(f"cannot listen on {target}")
    return RunningServer(
        server=server, port=port, health=health_servicer, app=app, metrics=metrics, admission=admission
    )


class AppCollector(Collector):
    """Scrape-time gauges read from the service: active model and training jobs."""

    def __init__(self, app: App) -> None:
        self._app = app

    def collect(self) -> Any:
        model = GaugeMetricFamily(
            "luban_active_model_info", "The model version serving each tenant (1)", labels=["tenant", "version"]
        )
        for tenant, version in self._app.models.serving().items():
            model.add_metric([tenant, version], 1.0)
        yield model
        jobs = GaugeMetricFamily("luban_training_jobs", "Training jobs by state", labels=["state"])
        for state, count in self._app.training.job_counts().items():
            jobs.add_metric([state], float(count))
        yield jobs
