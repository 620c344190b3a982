"""The least a durable RecordAssessment can do on this stack, as a reference for Luban Path's: parse
the request, hand the result to one writer thread per process that inserts everything queued in one
transaction with a full sync (SQLite in WAL mode, synchronous=FULL), and answer once it committed.
It does less per call than the service: no validation, no knowledge tracing, no profile in the
answer, no telemetry; 16 handler threads, as echo. Its processes share one database file, as the
service's processes share their store, but coordinate as the service only falls back to (storage's
WriterLock): each process commits its own callers' results, the writers taking turns on an fcntl
lock beside the file, which wakes the next one at once where SQLite's busy handler would sleep.
The service's processes on SQLite hand single results to one writer instead, whose sync serves
every process (docs/decisions/0014-one-writer-process.md).

`python -m bench.record_floor PORT PROCESSES DIRECTORY`: PROCESSES processes share the port
(SO_REUSEPORT), as `LUBAN_PROCESSES` serves Luban Path."""

from __future__ import annotations

import fcntl
import os
import queue
import sqlite3
import sys
import threading
import traceback
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from bench.echo import run_processes, wait_for_sigterm
from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb

SCHEMA = "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, learner_id TEXT, module_id TEXT, score REAL)"


def write_forever(db: sqlite3.Connection, pending: queue.SimpleQueue[tuple[Any, threading.Lock]], turn: int) -> None:
    """Group commit: everything queued while the last transaction committed goes into the next,
    in the processes' turn (`turn`: the lock file's descriptor)."""
    while True:
        group = [pending.get()]
        while True:
            try:
                group.append(pending.get_nowait())
            except queue.Empty:
                break
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                [(r.event_id, r.learner_id, r.module_id, r.score) for r, _ in group],
            )
            db.execute("COMMIT")
            fcntl.flock(turn, fcntl.LOCK_UN)
        except BaseException:
            # nothing to answer the group with: the process ends (its lock and transaction with it),
            # so the load sees its calls fail instead of every process waiting for the lock
            traceback.print_exc()
            os._exit(1)
        for _, committed in group:
            committed.release()


def serve(port: int, path: Path) -> None:
    turn = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    fcntl.flock(turn, fcntl.LOCK_EX)  # the processes open the new file together
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA wal_autocheckpoint=10000")  # as the service's store (storage/sql.py)
    db.execute(SCHEMA)
    fcntl.flock(turn, fcntl.LOCK_UN)
    pending: queue.SimpleQueue[tuple[Any, threading.Lock]] = queue.SimpleQueue()
    threading.Thread(target=write_forever, args=(db, pending, turn), daemon=True).start()

    def record(request: pb.RecordAssessmentRequest, context: grpc.ServicerContext) -> pb.RecordAssessmentResponse:
        committed = threading.Lock()
        committed.acquire()
        pending.put((request.result, committed))
        committed.acquire()  # released by the writer once the transaction is synced
        return pb.RecordAssessmentResponse(duplicate=False)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 1)])
    handler = grpc.unary_unary_rpc_method_handler(
        record, pb.RecordAssessmentRequest.FromString, pb.RecordAssessmentResponse.SerializeToString
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("luban.path.v1.LearningPathService", {"RecordAssessment": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    wait_for_sigterm()
    server.stop(0)


def main() -> None:
    port, processes, directory = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    run_processes(serve, [(port, directory / "floor.db")] * processes)


if __name__ == "__main__":
    main()
