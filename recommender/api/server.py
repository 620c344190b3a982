"""create_server(): the gRPC server with health, reflection and the Luban Path servicer."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.api.servicer import LearningPathServicer
from recommender.errors import LubanError
from recommender.service.app import App

log = logging.getLogger("recommender.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LearningPathService"].full_name


@dataclass
class RunningServer:
    """A started server and its health reporting; stop() drains gracefully."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    app: App
    health_interval: float = 1.0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def start(self) -> None:
        self.server.start()
        self.refresh_health()
        self._watcher = threading.Thread(target=self._watch, name="health-watch", daemon=True)
        self._watcher.start()

    def refresh_health(self) -> bool:
        """SERVING only while the store answers and a catalog is loaded."""
        try:
            self.app.store.ping()
            serving = not self.app.catalogs.current().is_empty()
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
        """Health NOT_SERVING first (so balancers drain), then let in-flight calls finish."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._watcher is not None:
            self._watcher.join()

    def wait(self) -> None:
        self.server.wait_for_termination()


def create_server(app: App, address: str | None = None) -> RunningServer:
    """Bind (not start) a server; port 0 picks a free port, returned in RunningServer.port."""
    settings = app.settings
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.max_workers * 8,
    )
    pb_grpc.add_LearningPathServiceServicer_to_server(LearningPathServicer(app), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address or settings.address)
    if port == 0:
        raise OSError(f"cannot bind {address or settings.address}")
    return RunningServer(server=server, port=port, health=health_servicer, app=app)
