"""Planning on the demo world, the compiled step loop against the numpy reference, in process:
demo learners planned one at a time (what RecommendPath's planner call costs, the store read
aside) and all together (one plan_many call, as batch planning does), plus the first call of a
fresh process (the compiled code loaded from its on-disk cache, or compiled when there is none).

`python -m bench.planning --store-url sqlite:///PATH --models-dir DIR` on a store holding the demo
world (`recommender demo`, and `recommender train` for model scores); prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from recommender.config import Settings
from recommender.service.app import build_app
from recommender.service.recommend import PathRequest, PlanItem, Planner, model_key
from recommender.storage.store import DEFAULT_TENANT


def measure(store_url: str, models_dir: Path, learners: int, rounds: int) -> dict[str, Any]:
    app = build_app(Settings(store_url=store_url, models_dir=models_dir))
    try:
        compiled = app.paths.planner()
        ids = [x.learner_id for _, x in itertools.islice(app.store.iter_learners(DEFAULT_TENANT), learners)]
        records = app.store.get_learner_records(DEFAULT_TENANT, ids)
        now = app.clock()
        items = [
            PlanItem(
                model_key(DEFAULT_TENANT, r.learner.learner_id),
                r.learner,
                r.states,
                compiled.options_for(r.learner, PathRequest(r.learner.learner_id)),
                r.studied_module_ids,
            )
            for r in (records[i] for i in ids)
        ]
        out: dict[str, Any] = {"learners": len(items), "rounds": rounds, "model": compiled.model_version}
        t0 = time.perf_counter()
        compiled.plan_many(items[:1], now)
        out["first_call_ms"] = (time.perf_counter() - t0) * 1000
        paths: dict[str, list[object]] = {}
        for label, planner in (("kernel", compiled), ("reference", replace(compiled, kernel=False))):
            out[label] = _timings(planner, items, now, rounds)
            paths[label] = list(planner.plan_many(items, now))
        out["identical_paths"] = paths["kernel"] == paths["reference"]
        for what in ("one_median_us", "one_cpu_median_us", "batch_ms", "batch_cpu_ms"):
            out[f"speedup_{what}"] = out["reference"][what] / out["kernel"][what]
        return out
    finally:
        app.store.close()


def _timings(planner: Planner, items: list[PlanItem], now: Any, rounds: int) -> dict[str, float]:
    """Wall time, and the thread's CPU time: on a shared machine the CPU time a call takes moves
    far less with the neighbours' load than its wall time does."""
    planner.plan_many(items[:5], now)  # warm: role arrays, renderers
    one: list[float] = []
    one_cpu: list[float] = []
    for _ in range(rounds):
        for item in items:
            c0, t0 = time.thread_time(), time.perf_counter()
            planner.plan_many([item], now)
            one.append((time.perf_counter() - t0) * 1e6)
            one_cpu.append((time.thread_time() - c0) * 1e6)
    batch: list[float] = []
    batch_cpu: list[float] = []
    for _ in range(rounds):
        c0, t0 = time.thread_time(), time.perf_counter()
        planner.plan_many(items, now)
        batch.append((time.perf_counter() - t0) * 1000)
        batch_cpu.append((time.thread_time() - c0) * 1000)
    one.sort()
    return {
        "one_median_us": statistics.median(one),
        "one_p90_us": one[int(0.9 * (len(one) - 1))],
        "one_cpu_median_us": statistics.median(one_cpu),
        "batch_ms": statistics.median(batch),
        "batch_cpu_ms": statistics.median(batch_cpu),
        "batch_per_learner_us": statistics.median(batch) * 1000 / len(items),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store-url", required=True)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--learners", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.store_url, args.models_dir, args.learners, args.rounds)))


if __name__ == "__main__":
    main()
