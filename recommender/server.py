"""Composition root: Settings -> store -> services -> gRPC server -> serve until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from recommender.api.server import create_server
from recommender.config import Settings
from recommender.service.app import App, build_app

log = logging.getLogger("recommender.server")


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    from recommender.api.interceptors import JsonFormatter

    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def serve(settings: Settings, app: App | None = None) -> None:
    configure_logging(settings)
    app = app or build_app(settings)
    running = create_server(app)
    running.start()
    host = settings.address.rsplit(":", 1)[0]
    print(
        f"Luban Path serving on {host}:{running.port} (store {redact(settings.store_url)})\n"
        f"  health:  grpc.health.v1.Health/Check\n"
        f"  list:    grpcurl -plaintext {host}:{running.port} list   (or buf curl --list-methods; see README)\n"
        f"  Ctrl-C or SIGTERM stops it gracefully",
        flush=True,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: draining for up to %.0f s", signum, settings.grace_seconds)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    running.stop(settings.grace_seconds)
    app.close()
    log.info("stopped")


def redact(url: str) -> str:
    """The store URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
