"""Composition root: Settings -> store -> services -> gRPC server -> serve until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from recommender.api.grpc_server import create_server
from recommender.config import Settings
from recommender.service.app import App, build_app

log = logging.getLogger("recommender.server")


MAX_LOGGED_MESSAGE = 2000  # characters of one log message
MAX_LOGGED_TRACEBACK = 6000  # characters of one logged traceback


class BoundedRecords(logging.Filter):
    """Clips a record's message and traceback: a log line may quote what a caller sent (an id, a
    path), and a megabyte argument must not become a megabyte log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > MAX_LOGGED_MESSAGE:
            record.msg, record.args = f"{message[:MAX_LOGGED_MESSAGE]}... ({len(message)} characters)", None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and len(record.exc_text) > MAX_LOGGED_TRACEBACK:
            text = record.exc_text
            record.exc_text = f"{text[: MAX_LOGGED_TRACEBACK // 2]}\n...\n{text[-MAX_LOGGED_TRACEBACK // 2 :]}"
        return True


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    from recommender.api.interceptors import JsonFormatter

    handler = logging.StreamHandler()
    handler.addFilter(BoundedRecords())
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
    app.paths.warm()  # the first RecommendPath does not wait for the compiled planner to load
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
