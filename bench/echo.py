"""A bare grpcio unary echo server with Luban Path's server settings: the ceiling of the Python
gRPC stack on this machine. `python -m bench.echo PORT`"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures

import grpc


def main() -> None:
    port = int(sys.argv[1])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)],
        maximum_concurrent_rpcs=128,
    )
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
