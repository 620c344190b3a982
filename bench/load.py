"""Load generator in its own process (grpc.aio), with bounded request counts.

`python -m bench.load TARGET MODE CONCURRENCY REQUESTS [LEARNERS] [--connections N] [--learner-ids FILE]`
prints one JSON line: {"mode", "concurrency", "requests", "errors", "seconds", "qps", "p50_ms", "p99_ms"}.
Modes: echo, recommend, record (a fresh event each call: durable writes), profile, health
(grpc.health.v1 Check, through every interceptor), ingest100 / ingest1000 (RecordAssessments
streams; REQUESTS counts events), overload (RecommendPath at CONCURRENCY while a probe calls
grpc.health.v1 Check every 0.25 s with a 2 s deadline, as an orchestrator would; adds health_ok
and health_total), repeat (RecommendPath for the learners of --learner-ids, each already asked for
on every connection: a page view with nothing new, the path cache's case) and miss (rounds of:
one new result for each of those learners, then RecommendPath for each: every path re-planned;
only the RecommendPath calls are timed).

--connections: calls are spread over N connections (each its own TCP connection), so a server of
several processes sharing its port (SO_REUSEPORT) gets calls on each of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    if mode == "health":
        from grpc_health.v1 import health_pb2

        check: bytes = health_pb2.HealthCheckRequest(service="").SerializeToString()
        return check
    return result_body(f"bench-{run}-{i}", learner, i)


def result_body(event_id: str, learner: str, i: int) -> bytes:
    result = pb.AssessmentResult(
        event_id=event_id, learner_id=learner, module_id="cross-cultural-101", score=float(i % 2), occurred_at=_at(i)
    )
    return pb.RecordAssessmentRequest(result=result).SerializeToString()


METHODS = {
    "echo": "/bench.Echo/Echo",
    "recommend": SERVICE + "RecommendPath",
    "repeat": SERVICE + "RecommendPath",
    "miss": SERVICE + "RecommendPath",
    "record": SERVICE + "RecordAssessment",
    "profile": SERVICE + "GetSkillProfile",
    "health": "/grpc.health.v1.Health/Check",
}


def channels_to(target: str, connections: int) -> list[grpc.aio.Channel]:
    """`connections` channels, each with a TCP connection of its own (not grpc's shared subchannel)."""
    return [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(connections)
    ]


async def timed(calls: list[Any], bodies: list[bytes], concurrency: int) -> tuple[list[float], int, float]:
    """Send `bodies` with `concurrency` callers, caller k on calls[k % len(calls)]: (latencies, errors, seconds)."""
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def worker(k: int) -> None:
        nonlocal next_index, errors
        call = calls[k % len(calls)]
        while next_index < len(bodies):
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                await call(bodies[i], timeout=30)
            except grpc.aio.AioRpcError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def summary(mode: str, concurrency: int, latencies: list[float], errors: int, seconds: float) -> dict[str, object]:
    lat = np.array(latencies) * 1000
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "qps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


async def unary(
    target: str, mode: str, concurrency: int, requests: int, learners: int, connections: int = 1
) -> dict[str, object]:
    run = str(time.time_ns())
    bodies = [body(mode, i, learners, run) for i in range(requests)]
    channels = channels_to(target, connections)
    try:
        calls = [c.unary_unary(METHODS[mode], None, None) for c in channels]
        for call in calls:
            await call(bodies[0])  # warm each connection
        latencies, errors, seconds = await timed(calls, bodies, concurrency)
    finally:
        for c in channels:
            await c.close(None)
    return summary(mode, concurrency, latencies, errors, seconds)


async def cached(
    target: str, mode: str, concurrency: int, requests: int, learner_ids: list[str], connections: int
) -> dict[str, object]:
    """repeat / miss (see the module's docstring)."""
    asks = [pb.RecommendPathRequest(learner_id=x, max_steps=10).SerializeToString() for x in learner_ids]
    run = str(time.time_ns())
    channels = channels_to(target, connections)
    latencies: list[float] = []
    errors = 0
    seconds = 0.0
    try:
        calls = [c.unary_unary(METHODS[mode], None, None) for c in channels]
        for call in calls:  # every connection (so every process) has planned every learner once
            await timed([call], asks, concurrency)
        if mode == "repeat":
            bodies = [asks[i % len(asks)] for i in range(requests)]
            latencies, errors, seconds = await timed(calls, bodies, concurrency)
        else:
            record = channels[0].unary_unary(SERVICE + "RecordAssessment", None, None)
            for r in range(max(requests // len(asks), 1)):
                news = [result_body(f"miss-{run}-{r}-{x}", x, r) for x in learner_ids]
                await timed([record], news, concurrency)
                lat, err, sec = await timed(calls, asks, concurrency)
                latencies += lat
                errors += err
                seconds += sec
    finally:
        for c in channels:
            await c.close(None)
    return summary(mode, concurrency, latencies, errors, seconds)


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
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("target")
    parser.add_argument("mode")
    parser.add_argument("concurrency", type=int)
    parser.add_argument("requests", type=int)
    parser.add_argument("learners", type=int, nargs="?", default=2000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--learner-ids", type=Path)
    args = parser.parse_args()
    target, mode, concurrency, requests, learners = (
        args.target,
        args.mode,
        args.concurrency,
        args.requests,
        args.learners,
    )
    out: dict[str, object]
    if mode.startswith("ingest"):
        out = asyncio.run(ingest(target, int(mode.removeprefix("ingest")), requests, learners))
    elif mode == "overload":
        out = asyncio.run(overload(target, concurrency, requests, learners))
    elif mode in ("repeat", "miss"):
        assert args.learner_ids is not None, "--learner-ids is required for repeat and miss"
        ids = args.learner_ids.read_text().split()
        out = asyncio.run(cached(target, mode, concurrency, requests, ids, args.connections))
    else:
        out = asyncio.run(unary(target, mode, concurrency, requests, learners, args.connections))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
