"""A real gRPC server on 127.0.0.1:0 over a real store, and a real channel to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from recommender.api.grpc_server import RunningServer, create_server
from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc
from recommender.service.app import App


@dataclass
class Served:
    running: RunningServer
    channel: grpc.Channel
    stub: pb_grpc.LearningPathServiceStub
    app: App


@contextmanager
def serving(app: App) -> Iterator[Served]:
    """A real server for `app` on a loopback port, with a channel to it; both closed after."""
    running = create_server(app, "127.0.0.1:0")
    running.health_interval = 0.1
    running.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Served(running, channel, pb_grpc.LearningPathServiceStub(channel), app)
    finally:
        channel.close()
        running.stop(0)


@pytest.fixture
def served(app: App) -> Iterator[Served]:
    with serving(app) as server:
        yield server


def violations(error: grpc.RpcError) -> dict[str, str]:
    """Field violations from google.rpc.BadRequest in the status details."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    found: dict[str, str] = {}
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found
