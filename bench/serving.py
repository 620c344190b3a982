"""The serving targets of issue #23, against a bare echo server with as many processes:
`python -m bench.serving [--quick] [--processes N] [--profile]` (`make bench` and `make profile`
run it with --profile, so BENCHMARKS.md always carries the per-call breakdown).

Measured at concurrency 8 and 32, calls spread over 8 connections (so every process of each
server gets some), each run next to a run of echo (ratios taken within the pair): RecommendPath
repeated with nothing new (the path cache's case), RecommendPath right after a new result for that
learner (every path re-planned), RecordAssessment (durable) and, for reference, the same load on
a minimal durable server (bench/record_floor.py), a health check through every interceptor, each
with the server's CPU time per call; then streaming ingest on SQLite and `recommender paths` on a
varied 20,000-learner cohort with --workers 2.

--profile: py-spy records every worker process of the server (GIL-holding samples only) during
one more load of each of Luban Path's calls at concurrency 8, after the measured ones (the figures
are never a profiled run's), and the per-call breakdown (microseconds of GIL-held work per call,
by where it was spent) is reported beside the figures.

The section between the markers in BENCHMARKS.md is rewritten; raw numbers go to
bench/out/serving.json.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.__main__ import OUT, PY, ROOT, Server, free_port, recommender, run

BEGIN = "<!-- serving-processes: written by python -m bench.serving -->"
END = "<!-- /serving-processes -->"
CONNECTIONS = 8
LEARNERS = 200
DEMO_LEARNERS = 2000  # the demo world's learners (demo-0000 ...): the ingest load's results cycle through them
INGEST_MESSAGE = 1000  # results per RecordAssessments message
COHORT = 20_000

# (mode, ratio to echo QPS at least, p99 at most this many times echo's, or None)
TARGETS: dict[str, tuple[float, float | None]] = {
    "repeat": (0.5, 2.0),
    "miss": (0.25, None),
    "record": (0.35, 3.0),
    "health": (0.9, None),
}
LABELS = {
    "echo": "echo (bare grpcio)",
    "repeat": "RecommendPath, nothing new (cached)",
    "miss": "RecommendPath right after a new result",
    "record": "RecordAssessment (durable)",
    "floor": "RecordAssessment's floor: a minimal durable server, one store for its processes (bench/record_floor.py)",
    "health": "health Check through every interceptor",
}

GRPC_FILES = ("grpc/", "threading.py", "concurrent/futures", "queue.py")
# where a sample's time went, by the frames on its stack (first match wins)
CATEGORIES: list[tuple[str, Callable[[str], bool]]] = [
    ("group-commit writer (SQL, BKT update, commit)", lambda s: "commit.py" in s and "_commit" in s),
    ("commit relay between processes (service/relay.py)", lambda s: "service/relay.py" in s),
    ("model scoring (ml/model.py)", lambda s: "ml/model.py" in s),
    ("reason rendering (planner/reasons.py)", lambda s: "planner/reasons.py" in s),
    ("planning (planner/plan.py and state)", lambda s: "plan_paths" in s or "plan_many" in s),
    ("store reads", lambda s: "storage/sql.py" in s),
    ("response mapping (api/mapping.py)", lambda s: "mapping.py" in s and "to_proto" in s),
    ("access log", lambda s: "logging/__init__.py" in s),
    ("metrics (prometheus_client)", lambda s: "prometheus_client" in s),
    ("grpc server (framing, threads, serialization)", lambda s: _leaf_is(s, GRPC_FILES) or "recommender/" not in s),
    ("rest of the handlers (validation, service)", lambda s: "servicer.py" in s or "health.py" in s),
    ("interceptors (admission, telemetry, auth)", lambda s: "api/interceptors.py" in s or "api/admission.py" in s),
    ("other", lambda s: True),
]


def _leaf_is(stack: str, files: tuple[str, ...]) -> bool:
    """Whether the innermost frame runs in one of `files`: grpc's own work (receiving, sending,
    handing a call to a thread) also runs inside the interceptors' wrappers, and counts as grpc's."""
    leaf = stack.rsplit(";", 1)[-1]
    return any(f in leaf for f in files)


def prepare(work: Path) -> None:
    """The demo world with a trained model."""
    recommender(work, "demo")
    recommender(work, "train", "--force")


def reachable_learners(port: int) -> list[str]:
    import grpc

    from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
    from recommender.api.pb.luban.path.v1 import learning_path_pb2_grpc as pb_grpc

    found = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.LearningPathServiceStub(channel)
        for i in range(DEMO_LEARNERS):
            try:
                stub.RecommendPath(pb.RecommendPathRequest(learner_id=f"demo-{i:04d}", max_steps=10), timeout=30)
            except grpc.RpcError:
                continue
            found.append(f"demo-{i:04d}")
            if len(found) == LEARNERS:
                break
    return found


def children_of(pid: int) -> list[int]:
    """A process's direct children, from /proc (none once it has ended)."""
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def workers_of(pid: int) -> list[int]:
    """A server's worker processes (not multiprocessing's resource tracker), or the server itself."""
    return [c for c in children_of(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()] or [pid]


def load(port: int, mode: str, concurrency: int, requests: int, ids: Path, profile: Path | None = None,
         server_pid: int = 0) -> dict[str, Any]:  # fmt: skip
    args = [PY, "-m", "bench.load", f"127.0.0.1:{port}", mode, str(concurrency), str(requests),
            "--connections", str(CONNECTIONS), "--learner-ids", str(ids)]  # fmt: skip
    spies: list[subprocess.Popen[bytes]] = []
    if profile is not None:
        spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
        for k, pid in enumerate(workers_of(server_pid)):
            record = profile.with_name(f"{profile.name}-{k}.txt")
            spies.append(subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--rate", "500", "--format", "raw",
                                           "--output", str(record), "--nonblocking"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        time.sleep(1.0)  # py-spy attaches
    try:
        out, _, _ = run(args, timeout=1800)
    finally:
        for s in spies:
            s.send_signal(2)  # SIGINT: py-spy writes its output and exits
            s.wait(timeout=60)
    return dict(json.loads(out.strip().splitlines()[-1]))


def load_on(server_pid: int, port: int, mode: str, concurrency: int, requests: int, ids: Path) -> dict[str, Any]:
    """load(), with the server's CPU time per call over the run (`cpu_us`): what the server spends
    on a call, from which a ratio to echo follows once the host's cores are all busy."""
    before = process_tree_cpu(server_pid)
    result = load(port, mode, concurrency, requests, ids)
    result["cpu_us"] = (process_tree_cpu(server_pid) - before) / max(int(result["requests"]), 1) * 1e6
    return result


def process_tree_cpu(pid: int) -> float:
    """Seconds of CPU (user and system) a server's process and its direct children (the processes
    sharing its port) have used so far, from /proc."""
    ticks = 0
    for p in [pid, *children_of(pid)]:
        with contextlib.suppress(OSError):  # a child that ended meanwhile
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def breakdown(profile: Path, calls: int, rate: int = 500, leave_out: tuple[str, ...] = ()) -> dict[str, float]:
    """Microseconds of GIL-held work per call, by category, from py-spy's raw (collapsed) stacks
    of every worker; stacks naming any of `leave_out` are not counted (the miss load's own
    RecordAssessment calls). The spies run a little longer than the load (attach and stop
    margins), so idle-time work (health refresh, timers) is included: small next to the per-call
    figures."""
    totals = dict.fromkeys([name for name, _ in CATEGORIES], 0.0)
    for part in profile.parent.glob(f"{profile.name}-*.txt"):
        for line in part.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit() or any(word in stack for word in leave_out):
                continue
            for name, matches in CATEGORIES:
                if matches(stack):
                    totals[name] += int(count)
                    break
    per_call = {name: samples / rate / max(calls, 1) * 1e6 for name, samples in totals.items()}
    per_call["total"] = sum(per_call.values())
    return per_call


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def summary_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "qps": median_of(runs, "qps"),
        "qps_range": [min(r["qps"] for r in runs), max(r["qps"] for r in runs)],
        "p50_ms": median_of(runs, "p50_ms"),
        "p99_ms": median_of(runs, "p99_ms"),
        "cpu_us": median_of(runs, "cpu_us"),
        "errors": sum(int(r["errors"]) for r in runs),
        "runs": len(runs),
    }


ALL_MODES = ("echo", "repeat", "miss", "record", "floor", "health")


def serving(
    work: Path, processes: int, quick: bool, profile: bool, modes: tuple[str, ...] = ALL_MODES, ingest: bool = True
) -> dict[str, Any]:
    luban_port, echo_port = free_port(), free_port()
    ports = {"echo": echo_port}
    env = {
        "LUBAN_STORE_URL": f"sqlite:///{work / 'bench.db'}",
        "LUBAN_ADDRESS": f"127.0.0.1:{luban_port}",
        "LUBAN_MODELS_DIR": str(work / "models"),
        "LUBAN_LOG_FORMAT": "json",
        "LUBAN_PROCESSES": str(processes),
    }
    with contextlib.ExitStack() as started:  # every server started is stopped, whatever fails after it
        luban = Server([PY, "-m", "recommender", "serve"], luban_port, env)
        started.callback(luban.stop)
        echo = Server([PY, "-m", "bench.echo", str(echo_port), str(processes)], echo_port)
        started.callback(echo.stop)
        pids = {"echo": echo.process.pid}
        if "floor" in modes:
            ports["floor"] = free_port()
            floor = Server([PY, "-m", "bench.record_floor", str(ports["floor"]), str(processes), str(work)],
                           ports["floor"])  # fmt: skip
            started.callback(floor.stop)
            pids["floor"] = floor.process.pid
        return _measure(work, luban, ports, pids, quick, profile, modes, ingest, processes)


def _measure(
    work: Path, luban: Server, ports: dict[str, int], pids: dict[str, int], quick: bool, profile: bool,
    modes: tuple[str, ...], ingest: bool, processes: int,
) -> dict[str, Any]:  # fmt: skip
    luban_port = luban.port
    repeats = 1 if quick else 5
    requests = 1000 if quick else 3000
    results: dict[str, Any] = {"processes": processes, "connections": CONNECTIONS, "learners": LEARNERS}
    ids = work / "learners.txt"
    ids.write_text("\n".join(reachable_learners(luban_port)))
    for concurrency in (8, 32):
        echoes: list[dict[str, Any]] = []
        for mode in (m for m in modes if m != "echo"):
            n = LEARNERS * (2 if quick else 5) if mode == "miss" else requests
            runs: list[dict[str, Any]] = []
            ratios: list[float] = []
            p99_ratios: list[float] = []
            for k in range(repeats):
                # each run next to an echo run, in alternating order: the host's other work drifts
                # over minutes, so a ratio of runs seconds apart is steadier than one of medians
                order = ("echo", mode) if k % 2 == 0 else (mode, "echo")
                got = {m: load_on(pids.get(m, luban.process.pid), ports.get(m, luban_port),
                                  "record" if m == "floor" else m, concurrency, requests if m == "echo" else n, ids)
                       for m in order}  # fmt: skip
                runs.append(got[mode])
                echoes.append(got["echo"])
                ratios.append(got[mode]["qps"] / got["echo"]["qps"])
                p99_ratios.append(got[mode]["p99_ms"] / got["echo"]["p99_ms"])
            results[f"{mode}@{concurrency}"] = {
                **summary_of(runs),
                "ratio": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "p99_ratio": statistics.median(p99_ratios),
                "p99_ratio_range": [min(p99_ratios), max(p99_ratios)],
            }
            if profile and concurrency == 8 and mode != "floor":
                spied = work / f"profile-{mode}"
                measured = load(luban_port, mode, concurrency, n, ids, spied, luban.process.pid)
                leave_out = ("RecordAssessment", "service/commit.py") if mode == "miss" else ()
                results[f"profile:{mode}"] = breakdown(spied, int(measured["requests"]), leave_out=leave_out)
        if echoes:
            results[f"echo@{concurrency}"] = summary_of(echoes)
    events = 20_000 if quick else 100_000
    if not ingest:
        return results
    stored_before = stored_results(work / "bench.db")
    stream = [PY, "-m", "bench.load", f"127.0.0.1:{luban_port}", f"ingest{INGEST_MESSAGE}", "1", str(events),
            str(DEMO_LEARNERS)]  # fmt: skip
    texts = [run(stream)[0] for _ in range(1 if quick else 3)]
    rates = [float(json.loads(t.strip().splitlines()[-1])["events_per_s"]) for t in texts]
    results["ingest1000"] = {"events_per_s": statistics.median(rates), "runs": rates, "events": events,
                             "stored_before": stored_before}  # fmt: skip
    return results


def stored_results(database: Path) -> int:
    """Results in the SQLite store, read beside the running server (WAL readers do not block it)."""
    from recommender.storage.sql import open_store

    store = open_store(f"sqlite:///{database}", pool_size=1)
    try:
        return store.count_events()
    finally:
        store.close()


def _down(value: float) -> str:
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}"


def _up(value: float) -> str:
    return f"{math.ceil(value * 100 - 1e-9) / 100:.2f}"


def _ratio(value: float, least: float | None = None, most: float | None = None) -> str:
    """Two decimals; a ratio that misses its target (at `least`, at most `most`) rounded away from
    it, so the figure beside "no" never reads as met (0.8996 against at least 0.9 reads 0.89)."""
    if least is not None and value < least:
        return _down(value)
    if most is not None and value > most:
        return _up(value)
    return f"{value:.2f}"


def _spread(low: float, high: float) -> str:
    """A range to two decimals that holds every value in it (its ends rounded outwards)."""
    return f"{_down(low)}-{_up(high)}"


def varied_cohort(path: Path, n: int, seed: int = 23) -> None:
    """New learners with mixed languages, HSK levels, weekly minutes and roles (the planner's memo
    of history-less learners helps little)."""
    import numpy as np

    from recommender.service.demo import demo_catalog_path

    catalog = json.loads(demo_catalog_path().read_text(encoding="utf-8"))
    roles = sorted(r["role_id"] for r in catalog["roles"])
    languages = sorted({lang for m in catalog["modules"] for lang in m.get("languages", [])})
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["learner_id", "cohort_id", "country", "languages", "program", "target_role_id",
                         "chinese_level", "weekly_minutes", "experience_years"])  # fmt: skip
        for i in range(n):
            spoken = rng.choice(languages, size=int(rng.integers(1, 4)), replace=False)
            writer.writerow([f"v{i:06d}", "2027", str(rng.choice(["KE", "ET", "PK", "KZ", "LA", "EG", "BR", "ID"])),
                             ";".join(spoken), "", str(rng.choice(roles)), int(rng.integers(0, 7)),
                             int(rng.integers(1, 21)) * 30, int(rng.integers(0, 10))])  # fmt: skip


def batch(work: Path) -> dict[str, Any]:
    cohort = work / "varied.csv"
    varied_cohort(cohort, COHORT)
    out, seconds, peak = recommender(work, "paths", "--cohort", str(cohort), "--out", str(work / "varied.jsonl"),
                                     "--as-of", "2026-11-01T00:00:00+00:00", "--workers", "2", timeout=3600)  # fmt: skip
    running = float(out.strip().splitlines()[-1].rsplit(";", 1)[1].split()[0])
    return {"learners": COHORT, "learners_per_s": COHORT / seconds, "running_learners_per_s": running,
            "seconds": seconds, "peak_rss_mb": peak}  # fmt: skip


def render(results: dict[str, Any]) -> str:
    s = results["serving"]
    lines = [
        BEGIN,
        "## Serving from every core (issue #23)",
        "",
        f"Produced by `python -m bench.serving` on {results['date']} ({os.cpu_count()} CPUs shared with other "
        f"work: figures are noisy). Luban Path with LUBAN_PROCESSES={s['processes']} against a bare grpcio echo "
        f"server of as many processes sharing its port; a grpc.aio load generator in its own process, calls "
        f"spread over {s['connections']} connections; RecommendPath over {s['learners']} demo learners whose "
        "role is reachable (10 steps, demo world, a trained model active). Each run of a call is paired with a "
        "run of echo right before or after it (the order alternating), and its ratios to echo are taken within "
        "the pair: QPS / echo and p99 / echo's are the medians of those paired ratios (their range in brackets); "
        "QPS, p50 and p99 are medians of the runs, echo's over all its runs at that concurrency (so a call's ratio "
        "is not its QPS over the echo row's). Server CPU per call: the CPU time (user and system) of all the "
        "server's processes over a run, per call, the median of the runs; the load generator shares the host's "
        "cores with it.",
        "",
        "| call | concurrency | QPS | QPS / echo | p50 ms | p99 ms | p99 / echo's | server CPU µs per call | target "
        "| met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for concurrency in (8, 32):
        for mode in (m for m in ALL_MODES if f"{m}@{concurrency}" in s):
            r = s[f"{mode}@{concurrency}"]
            ratio, p99_ratio = (1.0, 1.0) if mode == "echo" else (r["ratio"], r["p99_ratio"])
            spread = f" ({_spread(*r['ratio_range'])})" if "ratio_range" in r else ""
            target, met = "", ""
            least, p99_most = TARGETS.get(mode, (None, None))
            if least is not None:
                target = f">= {least}x" + (f", p99 <= {p99_most}x" if p99_most else "")
                ok = ratio >= least and (p99_most is None or p99_ratio <= p99_most)
                met = "yes" if ok else "**no**"
            lines.append(f"| {LABELS[mode]} | {concurrency} | {r['qps']:,.0f} | {_ratio(ratio, least=least)}{spread} | "
                         f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {_ratio(p99_ratio, most=p99_most)} | "
                         f"{r['cpu_us']:,.0f} | {target} | {met} |")  # fmt: skip
    ingest = s["ingest1000"]
    rate = ingest["events_per_s"]
    b = results["batch"]
    runs = ingest["runs"]
    spanned = min(INGEST_MESSAGE, DEMO_LEARNERS)
    lines += [
        "",
        f"- Streaming ingest (RecordAssessments, {INGEST_MESSAGE:,} results per message, one stream, durable on "
        f"SQLite): {rate:,.0f} events/s (target >= 30,000: {'met' if rate >= 30_000 else '**not met**'}); "
        + (
            f"the median of {len(runs)} runs of {ingest['events']:,} results into one store, in order "
            f"{', '.join(f'{x:,.0f}' for x in runs)}"
            if len(runs) > 1
            else f"one run of {ingest['events']:,} results"
        )
        + f"; the store held {ingest['stored_before']:,} results before the first. A message's results span {spanned:,} of "
        f"the {DEMO_LEARNERS:,} demo learners, and each commit writes a page of the per-learner result index for "
        "every learner in it, pages that learners share while the store is small and that become each learner's "
        "own as it grows, so a larger store writes more pages per result "
        "([decision 5](docs/decisions/0005-wal-checkpoints.md))",
        f"- `recommender paths --workers 2` on a varied {b['learners']:,}-learner cohort (mixed languages, HSK "
        f"levels, weekly minutes, roles): {b['learners_per_s']:,.0f} learners/s end to end, "
        f"{b['running_learners_per_s']:,.0f} once running (target >= 5,000 end to end: "
        f"{'met' if b['learners_per_s'] >= 5000 else '**not met**'})",
    ]
    profiles = {k.split(":", 1)[1]: v for k, v in s.items() if k.startswith("profile:")}
    if profiles:
        modes = [m for m in ("repeat", "miss", "record", "health") if m in profiles]
        lines += [
            "",
            "Per-call breakdown at concurrency 8 (`make profile`: py-spy on every worker process, GIL-held "
            "samples only; microseconds of GIL-held work per call, summed over the processes; the re-planned "
            "column leaves out the load's own RecordAssessment calls and the writer):",
            "",
            "| where | " + " | ".join(LABELS[m] for m in modes) + " |",
            "|---|" + "---|" * len(modes),
        ]
        for name in [*(n for n, _ in CATEGORIES), "total"]:
            lines.append(f"| {name} | " + " | ".join(f"{profiles[m][name]:,.0f}" for m in modes) + " |")
    lines.append(END)
    return "\n".join(lines)


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        updated = head + text + tail
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy per-call breakdown (concurrency 8)")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--only", nargs="+", choices=ALL_MODES, help="just these modes (printed, BENCHMARKS.md untouched)"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="luban-serving-"))
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        print("demo world and model ...", flush=True)
        prepare(work)
        print("serving ...", flush=True)
        if args.only:
            only = serving(work, args.processes, args.quick, args.profile, ("echo", *args.only), ingest=False)
            print(json.dumps(only, indent=1))
            for key, r in only.items():
                if key.startswith("echo@"):
                    print(f"{key}: {r['cpu_us']:,.0f} us of server CPU per call")
                if isinstance(r, dict) and "ratio" in r:
                    print(
                        f"{key}: {r['ratio']:.2f}x echo ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}), "
                        f"p99 {r['p99_ratio']:.2f}x echo's, {r['cpu_us']:,.0f} us of server CPU per call"
                    )
            return
        results["serving"] = serving(work, args.processes, args.quick, args.profile)
        print("batch ...", flush=True)
        results["batch"] = batch(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (OUT / "serving.json").write_text(json.dumps(results, indent=1))
    text = render(results)
    write_section(text)
    print(text)


if __name__ == "__main__":
    main()
