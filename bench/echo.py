"""A bare grpcio unary echo server with Luban Path's message-size limits and port sharing: the
ceiling of the Python gRPC stack on this machine. Its 16 handler threads and 128 concurrent calls
stay as the issue's figures were first measured, whatever Luban Path's own thread count.

`python -m bench.echo PORT [PROCESSES]`: with PROCESSES > 1, that many processes share the port
(SO_REUSEPORT), as `LUBAN_PROCESSES` serves Luban Path."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc


def serve(port: int) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[
            ("grpc.max_receive_message_length", 16 << 20),
            ("grpc.max_send_message_length", 16 << 20),
            ("grpc.so_reuseport", 1),
        ],
        maximum_concurrent_rpcs=128,
    )
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    wait_for_sigterm()
    server.stop(0)


def wait_for_sigterm() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


def run_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
    """target(*a) in a spawned process for each a of `args` until SIGTERM, then each ended."""
    if len(args) == 1:
        target(*args[0])
        return
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=a) for a in args]
    for w in workers:
        w.start()
    wait_for_sigterm()
    for w in workers:
        w.terminate()
    for w in workers:
        w.join()


def main() -> None:
    port = int(sys.argv[1])
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    run_processes(serve, [(port,)] * processes)


if __name__ == "__main__":
    main()
