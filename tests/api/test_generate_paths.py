"""GeneratePaths: request order, per-learner errors in the stream, deadlines and cancellation."""

from __future__ import annotations

import time
from datetime import datetime

import grpc
import pytest

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.service.recommend import PlanItem, Planner
from tests.api.conftest import Served
from tests.api.test_core_rpcs import code_of, load_tiny


def learners(n: int) -> list[pb.Learner]:
    return [pb.Learner(learner_id=f"g{i:05d}", languages=["en"], target_role_id="welder") for i in range(n)]


def test_stream_in_request_order_with_per_learner_errors(served: Served) -> None:
    load_tiny(served)
    batch = learners(5)
    batch[1].target_role_id = "astronaut"
    batch[3].languages[:] = ["th"]
    out = list(served.stub.GeneratePaths(pb.GeneratePathsRequest(learners=batch, max_steps=3, locale="zh")))
    assert [o.index for o in out] == [0, 1, 2, 3, 4]
    assert [o.learner_id for o in out] == [x.learner_id for x in batch]
    assert out[0].HasField("path") and out[0].path.steps[0].module_id == "safety-101"
    assert out[1].HasField("error") and out[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert out[1].error.field == "learners[1].target_role_id"
    assert out[3].error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0] and "(th)" in out[3].error.message
    assert served.app.store.count_learners() == 0, "not stored unless persist"
    list(served.stub.GeneratePaths(pb.GeneratePathsRequest(learners=batch[:1], persist=True)))
    assert served.app.store.get_learner("default", "g00000") is not None


def test_too_many_learners_is_rejected_whole(served: Served) -> None:
    load_tiny(served)
    limit = served.app.settings.max_ids_per_request
    with pytest.raises(grpc.RpcError) as exc:
        list(served.stub.GeneratePaths(pb.GeneratePathsRequest(learners=learners(limit + 1))))
    assert code_of(exc.value) == grpc.StatusCode.INVALID_ARGUMENT


def slow_planning(monkeypatch: pytest.MonkeyPatch, seconds_per_learner: float) -> list[int]:
    """Make planning take this long per learner; the list counts the learners planned so far."""
    planned = [0]
    original = Planner.plan_many

    def slow(self: Planner, items: list[PlanItem], now: datetime):  # type: ignore[no-untyped-def]
        planned[0] += len(items)
        time.sleep(seconds_per_learner * len(items))
        return original(self, items, now)

    monkeypatch.setattr(Planner, "plan_many", slow)
    return planned


def test_cancellation_stops_the_work(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    load_tiny(served)
    planned = slow_planning(monkeypatch, 0.002)
    call = served.stub.GeneratePaths(pb.GeneratePathsRequest(learners=learners(3000)))
    first = next(iter(call))
    assert first.index == 0
    call.cancel()
    time.sleep(0.5)
    stopped_at = planned[0]
    time.sleep(0.5)
    assert planned[0] == stopped_at, "no more planning after the client went away"
    assert 0 < stopped_at < 3000


def test_deadline_is_honoured(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    load_tiny(served)
    planned = slow_planning(monkeypatch, 0.01)
    with pytest.raises(grpc.RpcError) as exc:
        # planning all of them takes 20 s; the deadline leaves time to start even on a busy machine
        list(served.stub.GeneratePaths(pb.GeneratePathsRequest(learners=learners(2000)), timeout=2.0))
    assert code_of(exc.value) == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.5)
    count = planned[0]
    time.sleep(0.3)
    assert 0 < planned[0] == count < 2000
