"""Composition root: Settings -> store -> services -> gRPC server -> serve until SIGTERM, from one
process or from several sharing the port."""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, cast

from recommender.api.grpc_server import create_server
from recommender.config import Settings, redact
from recommender.listen import ListenError, split_address
from recommender.service.app import App, build_app
from recommender.service.relay import relay_address

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


BATCH_SECONDS = 0.25  # longest a line below WARNING waits to be written
BATCH_BYTES = 4096  # PIPE_BUF: a write of at most this much to a pipe is not interleaved with another process's


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes lines below WARNING in batches. Every call logs an access line,
    and a write per line (a system call that also hands the GIL over, and stderr's flush) was a
    large part of what the call's telemetry cost the server. Lines keep their order and stay one
    per record, formatted when logged; a batch is written within BATCH_SECONDS, before it would
    grow past BATCH_BYTES (so each batch is one write, which the worker processes sharing stderr
    cannot interleave), before any WARNING or worse (written at once), and at exit (logging's
    shutdown flushes every handler). A process killed outright loses at most its last
    BATCH_SECONDS of INFO lines, as nginx's buffered access_log does."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._size = 0
        self._last: logging.LogRecord | None = None  # for handleError when a batch cannot be written
        self._pid = os.getpid()
        self._due = threading.Event()  # set while lines are pending: the writer thread counts down
        self._writer: threading.Thread | None = None
        self._closed = False

    def emit(self, record: logging.LogRecord) -> None:  # logging calls it under the handler's lock
        try:
            line = self.format(record) + self.terminator
            if self._pid != os.getpid():  # a forked child: what is pending is its parent's to write
                self._pid, self._pending, self._size, self._last, self._writer = os.getpid(), [], 0, None, None
                self._due = threading.Event()
            size = len(line) if line.isascii() else len(line.encode())
            if record.levelno >= logging.WARNING or size > BATCH_BYTES or self._closed:
                self._write_pending()
                self.stream.write(line)
                self.stream.flush()
                return
            if self._size + size > BATCH_BYTES:
                self._write_pending()
            self._pending.append(line)
            self._size += size
            self._last = record
            if not self._due.is_set():
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_later, name="log-batches", daemon=True)
                    self._writer.start()
                self._due.set()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text, last = "".join(self._pending), self._last
        self._pending, self._size, self._last = [], 0, None
        self._due.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            if last is not None:
                self.handleError(last)

    def _write_later(self) -> None:
        while not self._closed:
            self._due.wait()
            time.sleep(BATCH_SECONDS)
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
            super().flush()
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._due.set()  # the writer thread ends
        super().close()


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    from recommender.api.interceptors import JsonFormatter

    handler = BatchedStreamHandler()
    handler.addFilter(BoundedRecords())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    # what no format here uses is not collected per record (the logging HOWTO's "Optimization"):
    # the calling frame, thread and process; a call writes an access line, so this is per call
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BatchedStreamHandler):
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def serve(settings: Settings, app: App | None = None, dashboard: str = "") -> int:
    """Serve until SIGTERM or SIGINT, from `settings.processes` processes; the exit status.
    `dashboard`: the address of a dashboard started beside it, for the banner. A signal while it
    starts is a stop like any other: what was being built is finished and closed, and the exit
    status is 0."""
    configure_logging(settings)
    stop = _stop_on_signals(settings)
    if settings.processes > 1:
        # the store's schema and old model folders are brought up to date once, here, not by
        # every worker at the same time; the workers open their own stores (nothing crosses a fork)
        (app or build_app(settings)).close()
        return 0 if stop.is_set() else serve_processes(settings, stop, dashboard)
    app = app or build_app(settings)
    app.paths.warm()  # the first RecommendPath does not wait for the compiled planner to load
    running = create_server(app)
    running.start()
    _freeze_startup_objects()
    if not stop.is_set():
        _banner(settings, running.port, 1, dashboard)
    stop.wait()
    running.stop(settings.grace_seconds)
    app.close()
    log.info("stopped")
    return 0


def _freeze_startup_objects() -> None:
    """Leave what the server built to start (modules, the catalog, models, the compiled planner's
    machinery: hundreds of thousands of objects) out of the cyclic garbage collector's scans.
    Every full collection would traverse them again, and a call's own objects (an ingested batch
    builds several per result) trigger collections often: that cost a fifth of ingest's time. A
    cycle among them that becomes garbage later (an old catalog or model) is not reclaimed: a bound
    of one startup's objects."""
    gc.collect()
    gc.freeze()


def _banner(settings: Settings, port: int, processes: int, dashboard: str = "") -> None:
    host = settings.address.rsplit(":", 1)[0]
    each = f" from {processes} processes" if processes > 1 else ""
    print(
        f"Luban Path serving on {host}:{port}{each} (store {redact(settings.store_url)})\n"
        + (f"  dashboard: {dashboard}\n" if dashboard else "")
        + f"  health:  grpc.health.v1.Health/Check\n"
        f"  list:    grpcurl -plaintext {host}:{port} list   (or buf curl --list-methods; see README)\n"
        f"  Ctrl-C or SIGTERM stops it gracefully",
        flush=True,
    )


def _stop_on_signals(settings: Settings) -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: draining for up to %.0f s", signum, settings.grace_seconds)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


START_SECONDS = 300.0  # longest a worker process may take to start (imports, store, model load)


@contextmanager
def reserved_port(address: str) -> Iterator[int]:
    """Hold `address` with SO_REUSEPORT (bound, not listening, so it takes no connections) while
    the workers bind it too: port 0 becomes one port for all of them, and no other program can
    take the port between two workers' starts (grpc's examples/python/multiprocessing)."""
    host, port = split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ListenError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
        yield int(sock.getsockname()[1])


def serve_processes(settings: Settings, stop: threading.Event, dashboard: str = "") -> int:
    """A supervisor and `settings.processes` worker processes, each a whole server (its own store
    connections, caches, group-commit writer) on one port shared with SO_REUSEPORT. A signal is
    passed to every worker, which drains as a single server does; a worker that dies stops the
    others (the exit status is then 1: the orchestrator restarts the whole server). `stop`: set by
    the signal handlers `serve` installed."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no grpc or store state forked
    with reserved_port(settings.address) as port:
        address = f"{settings.address.rsplit(':', 1)[0]}:{port}"
        workers: list[tuple[BaseProcess, Connection]] = []
        relay_key = os.urandom(32)  # what a process must know to hand its writes to worker 0 (service/relay.py)
        for index in range(settings.processes):
            reader, writer = context.Pipe(duplex=False)
            worker: BaseProcess = context.Process(
                target=_worker, args=(settings, index, address, writer, os.getpid(), relay_key),
                name=f"luban-worker-{index}",
            )  # fmt: skip
            worker.start()
            writer.close()
            workers.append((worker, reader))
        heard: set[BaseProcess] = set()  # the workers that said they serve, or why they cannot
        started = _started(workers, stop, heard)
        failed = not started and not stop.is_set()  # a signal while starting is no failure
        reported: BaseProcess | None = None
        if started:
            _banner(settings, port, len(workers), dashboard)
            while not stop.wait(0.5):
                dead = [w for w, _ in workers if not w.is_alive()]
                if dead:
                    reported = dead[0]
                    log.error("worker %s exited (status %s): stopping the others", reported.name, reported.exitcode)
                    failed = True
                    break
        for worker, _reader in workers:
            if worker.pid is not None and worker.is_alive():
                with suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        # a worker stopped while it starts finishes its step first (opening the store, loading the
        # model, warming the planner): bounded by START_SECONDS, as the start is
        deadline = time.monotonic() + settings.grace_seconds + 30 + (0.0 if started else START_SECONDS)
        for worker, reader in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.error("worker %s did not stop in time: killed", worker.name)
                worker.kill()
                worker.join()
                failed = True
            # A worker the stop reached before it said anything had taken no call, however it
            # ended: the signal that stops the server reaches a worker still starting too (from
            # the supervisor, or from a terminal or an init system that signals the whole group),
            # and before its handlers exist it ends by the signal, or with status 1 when the signal
            # interrupts the interpreter's own start.
            spoke = worker in heard or _said_something(reader)
            if worker.exitcode != 0 and (spoke or not stop.is_set()):
                if worker is not reported:  # the status the exit reports: say whose it is
                    log.error("worker %s exited with status %s while stopping", worker.name, worker.exitcode)
                failed = True
            reader.close()
    log.info("stopped")
    return 1 if failed else 0


def _said_something(reader: Connection) -> bool:
    """Whether a worker's report (that it serves, or why it cannot) waits in its pipe unread."""
    try:
        return reader.poll() and reader.recv() is not None
    except (EOFError, OSError):
        return False


def _started(workers: list[tuple[BaseProcess, Connection]], stop: threading.Event, heard: set[BaseProcess]) -> bool:
    """Wait until every worker reports that it serves; False if one fails, dies or a signal came.
    A worker that dies closes its end of the pipe, which wakes this wait too. `heard` gains each
    worker that reported."""
    waiting = {reader: worker for worker, reader in workers}
    deadline = time.monotonic() + START_SECONDS
    while waiting:
        if stop.is_set() or time.monotonic() > deadline:
            return False
        for ready in wait(list(waiting), timeout=0.5):
            reader = cast(Connection, ready)
            worker = waiting.pop(reader)
            try:
                kind, detail = reader.recv()
            except EOFError:
                worker.join(1)
                if not stop.is_set():  # else the stop ended it (serve_processes)
                    log.error("worker %s exited while starting (status %s)", worker.name, worker.exitcode)
                return False
            heard.add(worker)
            if kind != "ready":
                log.error("worker %s cannot serve: %s", worker.name, detail)
                print(f"error: {detail}", file=sys.stderr, flush=True)
                return False
    return True


def _worker(settings: Settings, index: int, address: str, started: Connection, parent: int, relay_key: bytes) -> None:
    """One server process: serves `address` beside its siblings until SIGTERM or SIGINT. On SQLite,
    worker 0 commits single results for all of them (service/relay.py); PostgreSQL locks rows per
    learner and syncs concurrent commits together itself."""
    _die_with(parent)
    stop = _stop_on_signals(settings)  # a signal while starting stops it after the step it is in
    configure_logging(settings)
    if settings.metrics_address:  # each worker's own metrics: the configured port + its index
        host, _, metrics_port = settings.metrics_address.rpartition(":")
        shifted = f"{host}:{int(metrics_port) + index}" if int(metrics_port) else settings.metrics_address
        settings = settings.model_copy(update={"metrics_address": shifted})
    try:
        app = build_app(settings)
        if stop.is_set():  # stopped while it opened the store and loaded the model: nothing to drain
            app.close()
            return
        if app.store.one_writer:
            app.learners.share_commits(relay_address(parent), relay_key, serve=index == 0)
        app.paths.warm()  # the first RecommendPath does not wait for the compiled planner to load
        running = create_server(app, address, reuse_port=True)
        running.start()
        _freeze_startup_objects()
    except Exception as exc:
        started.send(("error", str(exc)))
        raise SystemExit(1) from exc
    started.send(("ready", os.getpid()))
    started.close()
    log.info("worker %d serving on %s (pid %d)", index, address, os.getpid())
    stop.wait()
    running.stop(settings.grace_seconds)
    app.close()


def _die_with(parent: int) -> None:
    """A worker ends with its supervisor, however the supervisor ends (SIGKILL included): Linux's
    parent-death signal; elsewhere a supervisor killed outright leaves its workers to be stopped."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the supervisor ended before the signal was asked for
        os._exit(1)


PR_SET_PDEATHSIG = 1


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
