"""Composition root: Settings -> store -> services -> gRPC server -> serve until SIGTERM."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
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


def serve(settings: Settings, app: App | None = None, dashboard: str = "") -> None:
    configure_logging(settings)
    app = app or build_app(settings)
    app.paths.warm()  # the first RecommendPath does not wait for the compiled planner to load
    running = create_server(app)
    running.start()
    host = settings.address.rsplit(":", 1)[0]
    print(
        f"Luban Path serving on {host}:{running.port} (store {redact(settings.store_url)})\n"
        + (f"  dashboard: {dashboard}\n" if dashboard else "")
        + f"  health:  grpc.health.v1.Health/Check\n"
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


def start_dashboard(settings: Settings) -> subprocess.Popen[bytes]:
    """`recommender dashboard` as a child process with the same store and models (the rest of its
    settings come from the same LUBAN_* environment)."""
    return subprocess.Popen(
        [sys.executable, "-m", "recommender", "--store-url", settings.store_url, "--models-dir",
         str(settings.models_dir), "dashboard", "--listen", settings.dashboard_address],
    )  # fmt: skip


def serve_dashboard(settings: Settings) -> None:
    """The web dashboard over the same store and model registry, until SIGTERM or Ctrl-C."""
    import uvicorn

    from recommender.dashboard.web import create_dashboard
    from recommender.listen import split_address

    configure_logging(settings)
    app = build_app(settings)
    host, port = split_address(settings.dashboard_address)
    scheme = "https" if settings.tls_cert_file is not None else "http"  # the gRPC server's certificate, when set
    print(f"Luban Path dashboard on {scheme}://{settings.dashboard_address}/ (store {redact(settings.store_url)})")
    sys.stdout.flush()
    config = uvicorn.Config(
        create_dashboard(app, warm=True), host=host, port=port, log_config=None,
        ssl_certfile=settings.tls_cert_file, ssl_keyfile=settings.tls_key_file,
    )  # fmt: skip
    server = uvicorn.Server(config)
    # uvicorn drains on SIGTERM or Ctrl-C, then raises the signal again under the handlers it found:
    # these, so the process ends through the `finally` below (and exits 0) instead of by the signal
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: None)
    try:
        server.run()
    finally:
        app.close()
    log.info("dashboard stopped")


def redact(url: str) -> str:
    """The store URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
