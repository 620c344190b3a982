"""Load generator in its own process (grpc.aio), with bounded request counts.

`python -m bench.load TARGET MODE CONCURRENCY REQUESTS [LEARNERS]` prints one JSON line:
{"mode", "concurrency", "requests", "errors", "seconds", "qps", "p50_ms", "p99_ms"}.
Modes: echo, recommend, record (a fresh event each call: durable writes), profile,
ingest100 / ingest1000 (RecordAssessments streams; REQUESTS counts events), overload
(RecommendPath at CONCURRENCY while a probe calls grpc.health.v1 Check every 0.25 s with a 2 s
deadline, as an orchestrator would; adds health_ok and health_total).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb

SERVICE = "/luban.path.v1.LearningPathService/"


def _at(i: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(2026, 6, 1, tzinfo=UTC) + timedelta(seconds=i))
    return ts


def body(mode: str, i: int, learners: int, run: str) -> bytes:
    learner = f"demo-{i % learners:04d}"
    if mode == "echo":
        return pb.RecommendPathRequest(learner_id=learner, max_steps=10).SerializeToString()
    if mode == "recommend":
        return pb.RecommendPathRequest(learner_id=learner, max_steps=10).SerializeToString()
    if mode == "profile":
        return pb.GetSkillProfileRequest(learner_id=learner).SerializeToString()
    result = pb.AssessmentResult(
        event_id=f"bench-{run}-{i}",
        learner_id=learner,
        module_id="cross-cultural-101",
        score=float(i % 2),
        occurred_at=_at(i),
    )
    return pb.RecordAssessmentRequest(result=result).SerializeToString()


async def unary(target: str, mode: str, concurrency: int, requests: int, learners: int) -> dict[str, object]:
    method = (
        "/bench.Echo/Echo"
        if mode == "echo"
        else SERVICE + {"recommend": "RecommendPath", "record": "RecordAssessment", "profile": "GetSkillProfile"}[mode]
    )
    run = str(time.time_ns())
    bodies = [body(mode, i, learners, run) for i in range(requests)]
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method, None, None)
        await call(bodies[0])  # warm the connection
        next_index = 0

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < requests:
                i = next_index
                next_index += 1
                t0 = time.perf_counter()
                try:
                    await call(bodies[i], timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests": requests,
        "errors": errors,
        "seconds": seconds,
        "qps": requests / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


async def overload(target: str, concurrency: int, requests: int, learners: int) -> dict[str, object]:
    """RecommendPath at `concurrency` while health is probed; refusals (RESOURCE_EXHAUSTED) of
    service calls are expected under overload and counted as errors, failed probes are not."""
    from grpc_health.v1 import health_pb2

    check = health_pb2.HealthCheckRequest(service="luban.path.v1.LearningPathService").SerializeToString()
    probes: list[bool] = []
    done = asyncio.Event()
    async with grpc.aio.insecure_channel(target) as channel:
        probe = channel.unary_unary("/grpc.health.v1.Health/Check", None, None)

        async def prober() -> None:
            while not done.is_set():
                try:
                    raw = await probe(check, timeout=2)
                    probes.append(health_pb2.HealthCheckResponse.FromString(raw).status == 1)
                except grpc.aio.AioRpcError:
                    probes.append(False)
                await asyncio.sleep(0.25)

        running = asyncio.create_task(prober())
        try:
            result = await unary(target, "recommend", concurrency, requests, learners)
        finally:
            done.set()
            await running
    return {**result, "mode": "overload", "health_ok": sum(probes), "health_total": len(probes)}


async def ingest(target: str, batch: int, events: int, learners: int) -> dict[str, object]:
    run = str(time.time_ns())
    messages = []
    for start in range(0, events, batch):
        results = [
            pb.AssessmentResult(
                event_id=f"ing-{run}-{i}",
                learner_id=f"demo-{i % learners:04d}",
                module_id="cross-cultural-101",
                score=float(i % 2),
                occurred_at=_at(i),
            )
            for i in range(start, min(start + batch, events))
        ]
        messages.append(pb.RecordAssessmentsRequest(results=results).SerializeToString())
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_unary(SERVICE + "RecordAssessments", None, None)
        started = time.perf_counter()

        async def stream() -> AsyncIterator[bytes]:
            for m in messages:
                yield m

        raw = await call(stream(), timeout=600)
        seconds = time.perf_counter() - started
    summary = pb.IngestSummary.FromString(raw)
    return {
        "mode": f"ingest{batch}",
        "events": events,
        "accepted": summary.accepted,
        "rejected": len(summary.rejected),
        "seconds": seconds,
        "events_per_s": events / seconds,
    }


def main() -> None:
    target, mode, concurrency, requests = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    learners = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
    if mode.startswith("ingest"):
        out = asyncio.run(ingest(target, int(mode.removeprefix("ingest")), requests, learners))
    elif mode == "overload":
        out = asyncio.run(overload(target, concurrency, requests, learners))
    else:
        out = asyncio.run(unary(target, mode, concurrency, requests, learners))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
