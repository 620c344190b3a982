"""`make bench`: speed and learning quality side by side; writes BENCHMARKS.md,
bench/out/results.json and plots under docs/bench/. `python -m bench [--quick]`.

Every speed figure is reported with a reference measured in the same run (the bare grpcio echo
server), as medians of repeated runs with min-max, because this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
PLOTS = ROOT / "docs" / "bench"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> tuple[str, float, int]:
    """(stdout, seconds, peak RSS of this child in MB, from its own rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(args, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
        timer = threading.Timer(timeout, child.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({child.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return stdout, seconds, usage.ru_maxrss // 1024


def recommender(
    work: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> tuple[str, float, int]:
    return run(
        [
            PY,
            "-m",
            "recommender",
            "--store-url",
            f"sqlite:///{work / 'bench.db'}",
            "--models-dir",
            str(work / "models"),
            *args,
        ],
        env=env,
        timeout=timeout,
    )


class Server:
    def __init__(self, args: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.process = subprocess.Popen(
            args, env={**os.environ, **(env or {})}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load(port: int, mode: str, concurrency: int, requests: int) -> dict[str, Any]:
    out, _, _ = run([PY, "-m", "bench.load", f"127.0.0.1:{port}", mode, str(concurrency), str(requests)])
    return dict(json.loads(out.strip().splitlines()[-1]))


def median_of(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [float(r[key]) for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def serving(work: Path, quick: bool) -> dict[str, Any]:
    luban_port, echo_port = free_port(), free_port()
    env = {
        "LUBAN_STORE_URL": f"sqlite:///{work / 'bench.db'}",
        "LUBAN_ADDRESS": f"127.0.0.1:{luban_port}",
        "LUBAN_MODELS_DIR": str(work / "models"),
        "LUBAN_LOG_FORMAT": "text",
        "LUBAN_PROCESSES": "1",  # one connection, one process: as before; several: bench.serving
    }
    luban = Server([PY, "-m", "recommender", "serve"], luban_port, env)
    echo = Server([PY, "-m", "bench.echo", str(echo_port)], echo_port)
    repeats = 2 if quick else 3
    requests = 600 if quick else 1200
    results: dict[str, Any] = {}
    try:
        for concurrency in (1, 8, 32):
            for mode, port in (
                ("echo", echo_port),
                ("recommend", luban_port),
                ("record", luban_port),
                ("profile", luban_port),
            ):
                n = requests // (4 if concurrency == 1 else 1)
                runs = [load(port, mode, concurrency, n) for _ in range(repeats)]
                results[f"{mode}@{concurrency}"] = {
                    "qps": median_of(runs, "qps"),
                    "p50_ms": median_of(runs, "p50_ms"),
                    "p99_ms": median_of(runs, "p99_ms"),
                    "errors": sum(r["errors"] for r in runs),
                }
        results["h2load"] = h2load_runs(work, echo_port, luban_port, requests, repeats)
        runs = [load(luban_port, "overload", 200, requests * 2) for _ in range(repeats)]
        results["overload@200"] = {
            "health_ok": sum(int(r["health_ok"]) for r in runs),
            "health_total": sum(int(r["health_total"]) for r in runs),
            "errors": sum(int(r["errors"]) for r in runs),
            "requests": sum(int(r["requests"]) for r in runs),
        }
        for batch in (100, 1000):
            events = 20_000 if quick else 100_000
            runs = [load(luban_port, f"ingest{batch}", 1, events) for _ in range(repeats)]
            results[f"ingest{batch}"] = {
                "events_per_s": median_of(runs, "events_per_s"),
                "rejected": sum(r["rejected"] for r in runs),
            }
    finally:
        luban.stop()
        echo.stop()
    return results


H2LOAD_MODES = {
    "echo": "/bench.Echo/Echo",
    "recommend": "/luban.path.v1.LearningPathService/RecommendPath",
    "profile": "/luban.path.v1.LearningPathService/GetSkillProfile",
}


def h2load_runs(work: Path, echo_port: int, luban_port: int, requests: int, repeats: int) -> dict[str, Any]:
    """The same unary calls driven by h2load (nghttp2's C load generator, one connection, N
    concurrent streams), which costs the shared cores far less than a Python client. One
    pre-encoded body per method (h2load repeats it): the same learner every call, so RecordAssessment
    is not driven this way (every call after the first would be a replay, not a durable write)."""
    exe = shutil.which("h2load")
    if exe is None:
        return {"skipped": "h2load not found (Debian package nghttp2-client; `make bench` tries to install it)"}
    import struct

    from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb

    bodies = {
        "echo": pb.RecommendPathRequest(learner_id="demo-0001", max_steps=10),
        "recommend": pb.RecommendPathRequest(learner_id="demo-0001", max_steps=10),
        "profile": pb.GetSkillProfileRequest(learner_id="demo-0001"),
    }
    out: dict[str, Any] = {}
    for concurrency in (1, 8, 32):
        for mode, method in H2LOAD_MODES.items():
            body = work / f"h2load-{mode}.bin"
            message = bodies[mode].SerializeToString()
            body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
            port = echo_port if mode == "echo" else luban_port
            n = requests // (4 if concurrency == 1 else 1)
            runs = []
            for _ in range(repeats):
                text, _, _ = run(
                    [exe, "-n", str(n), "-c", "1", "-m", str(concurrency), f"--data={body}",
                     "-H", "content-type: application/grpc", "-H", "te: trailers",
                     f"http://127.0.0.1:{port}{method}"]
                )  # fmt: skip
                runs.append(parse_h2load(text))
            out[f"{mode}@{concurrency}"] = {
                "qps": median_of(runs, "qps"),
                "mean_ms": median_of(runs, "mean_ms"),
                "failed": sum(int(r["failed"]) for r in runs),
            }
    return out


def parse_h2load(text: str) -> dict[str, float]:
    import re

    qps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", text)
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", text)
    if not (qps and mean and done):
        raise RuntimeError(f"unexpected h2load output:\n{text[-1500:]}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[mean.group(2)]
    return {
        "qps": float(qps.group(1)),
        "mean_ms": float(mean.group(1)) * scale,
        "failed": float(int(done.group(1)) - int(done.group(2))),
    }


def planning_cost(quick: bool) -> dict[str, Any]:
    """In-process planning cost of a 10-step path on a generated 1,000-module catalog."""
    code = r"""
import json, time, numpy as np
from datetime import datetime, UTC
from recommender.domain.catalog import Module, Skill, SkillWeight, SkillRequirement, TargetRole, build_catalog
from recommender.domain.learner import Learner
from recommender.kt.bkt import BKTModel
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import LearnerState, PlanOptions, plan_path
rng = np.random.default_rng(0)
skills = [Skill(f"s{i}") for i in range(200)]
modules = []
for j in range(1000):
    prereqs = tuple(f"m{p:04d}" for p in rng.choice(j, size=min(j, int(rng.integers(0, 3))), replace=False)) if j else ()
    modules.append(Module(f"m{j:04d}", skills=(SkillWeight(f"s{int(rng.integers(200))}"),), prerequisite_module_ids=prereqs,
                          languages=("en",), difficulty=float(rng.random()), estimated_minutes=int(rng.integers(30, 240))))
roles = [TargetRole("r", requirements=tuple(SkillRequirement(f"s{i}", 0.8) for i in range(0, 200, 10)))]
catalog = build_catalog(skills, modules, roles)
arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
n = len(catalog.skill_ids)
times = []
for k in range(N):
    m = rng.random(n) * 0.5
    state = LearnerState(Learner("x", languages=("en",)), m, m.copy(), np.full(n, 3.0))
    t0 = time.perf_counter()
    plan_path(arrays, kt, state, PlanOptions("r", ("en",), max_steps=10), datetime.now(UTC))
    times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "n": N}))
""".replace("N)", f"{30 if quick else 200})").replace('"n": N', f'"n": {30 if quick else 200}')
    # separate processes, like every other speed figure: the median of the runs' medians, with min-max
    runs = [json.loads(run([PY, "-c", code])[0].strip().splitlines()[-1]) for _ in range(2 if quick else 3)]
    return {
        "median_ms": statistics.median(r["median_ms"] for r in runs),
        "runs_median_ms": median_of(runs, "median_ms"),
        "p90_ms": statistics.median(r["p90_ms"] for r in runs),
        "n": runs[0]["n"],
        "repeats": len(runs),
    }


def demo_planning(work: Path, quick: bool) -> dict[str, Any]:
    """Planning demo learners in process, the compiled step loop against the numpy reference
    (bench/planning.py): separate processes, the median of their figures with min-max."""
    args = ["--store-url", f"sqlite:///{work / 'bench.db'}", "--models-dir", str(work / "models")]
    args += ["--learners", "200", "--rounds", "1" if quick else "3"]
    runs = [
        json.loads(run([PY, "-m", "bench.planning", *args])[0].strip().splitlines()[-1])
        for _ in range(2 if quick else 3)
    ]
    out: dict[str, Any] = {"learners": runs[0]["learners"], "repeats": len(runs), "model": runs[0]["model"]}
    out["identical_paths"] = all(r["identical_paths"] for r in runs)
    out["first_call_ms"] = median_of(runs, "first_call_ms")
    for label in ("kernel", "reference"):
        out[label] = {key: median_of([r[label] for r in runs], key) for key in runs[0][label]}
    return out


def batch(work: Path, quick: bool) -> dict[str, Any]:
    """learners/s end to end (the process's wall time, start-up included: ~1 s of imports, store
    and model loading) and once running (the rate the command itself reports: reading, planning
    and writing), for history-less cohorts (the memo applies) and for one where every learner
    has prior results (every path planned)."""
    sizes = [2000] if quick else [10_000, 100_000]
    results: dict[str, Any] = {}

    def paths(label: str, size: int, cohort: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        out, seconds, peak = recommender(work, "paths", "--cohort", str(cohort), "--out", str(work / f"{label}.jsonl"),
                                         "--as-of", "2026-11-01T00:00:00+00:00", *extra, timeout=3600, env=env)  # fmt: skip
        running = float(out.strip().splitlines()[-1].rsplit(";", 1)[1].split()[0])
        results[f"{size}:{label}"] = {"learners_per_s": size / seconds, "running_learners_per_s": running,
                                      "seconds": seconds, "peak_rss_mb": peak}  # fmt: skip

    for size in sizes:
        cohort = work / f"cohort-{size}.csv"
        run(
            [
                PY,
                "-c",
                f"from tests.service.test_cohort_files import write_cohort; from pathlib import Path; "
                f"write_cohort(Path('{cohort}'), {size})",
            ]
        )
        results[f"{size}:distinct_profiles"] = distinct_profiles(cohort)
        paths("local", size, cohort)
        paths("workers2", size, cohort, "--workers", "2")
        if size == sizes[0]:
            # the same learners with the columns a real intake file has (full_name, email): they
            # become attributes no model has seen, and must not make every learner a distinct input
            named = work / f"cohort-{size}-named.csv"
            run([PY, "-c", f"from tests.service.test_cohort_files import write_cohort; from pathlib import Path; "
                 f"write_cohort(Path('{named}'), {size}, names=True)"])  # fmt: skip
            paths("local+names", size, named)
            # every learner with two prior module results: no two plan from the same inputs
            events = work / f"prior-{size}.csv"
            write_prior_results(cohort, events)
            paths("local+prior", size, cohort, "--events", str(events))
            paths("workers2+prior", size, cohort, "--events", str(events), "--workers", "2")
            # the same with the planner's numpy reference instead of its compiled step loop
            reference = {"LUBAN_PLANNER_KERNEL": "false"}
            paths("workers2+reference", size, cohort, "--workers", "2", env=reference)
            paths("workers2+prior+reference", size, cohort, "--events", str(events), "--workers", "2", env=reference)
            same = (work / "workers2+prior.jsonl").read_bytes() == (
                work / "workers2+prior+reference.jsonl"
            ).read_bytes()
            results[f"{size}:kernel_identical_to_reference"] = same
            # the same job twice on one cluster: the first also pays the workers' imports (a fresh
            # cluster), the second runs on warm workers, as on a cluster that is already up
            code = (
                "from distributed import LocalCluster; import subprocess, sys, time\n"
                "with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:\n"
                "  for run in range(2):\n"
                f"    t=time.perf_counter(); subprocess.run([sys.executable,'-m','recommender','--store-url','sqlite:///{work / 'bench.db'}',"
                f"'--models-dir','{work / 'models'}','paths','--cohort','{cohort}','--out','{work / 'd.jsonl'}',"
                "'--as-of','2026-11-01T00:00:00+00:00','--scheduler',c.scheduler_address],check=True,capture_output=True)\n"
                "    print(time.perf_counter()-t)\n"
            )
            out, _, _ = run([PY, "-c", code], timeout=900)  # a hung cluster fails the bench, not an hour later
            cold, warm = (float(x) for x in out.strip().splitlines()[-2:])
            results[f"{size}:dask2-cold"] = {"learners_per_s": size / cold, "seconds": cold}
            results[f"{size}:dask2"] = {"learners_per_s": size / warm, "seconds": warm}
            same = (work / "local.jsonl").read_bytes() == (work / "d.jsonl").read_bytes()
            results[f"{size}:dask_identical_to_local"] = same
            same = (work / "local+prior.jsonl").read_bytes() == (work / "workers2+prior.jsonl").read_bytes()
            results[f"{size}:prior_workers2_identical_to_local"] = same
    return results


def write_prior_results(cohort: Path, events: Path, seed: int = 5) -> None:
    """Two module-level results per learner (the generic event format), on modules of the demo
    catalog, with random scores: each learner's skill states differ."""
    import csv

    import numpy as np

    from recommender.service.demo import demo_catalog_path

    modules = sorted(m["module_id"] for m in json.loads(demo_catalog_path().read_text(encoding="utf-8"))["modules"])
    rng = np.random.default_rng(seed)
    with cohort.open(newline="") as source, events.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["event_id", "learner_id", "module_id", "item_id", "score", "occurred_at"])
        for row in csv.DictReader(source):
            for k, module in enumerate(rng.choice(modules, size=2, replace=False)):
                writer.writerow([f"{row['learner_id']}-{k}", row["learner_id"], module, "",
                                 f"{rng.random():.3f}", f"2026-10-{10 + k}T09:00:00+00:00"])  # fmt: skip


def distinct_profiles(cohort: Path) -> int:
    """Learners that differ in what planning reads (the planner memoizes the rest)."""
    import csv

    with cohort.open(newline="") as handle:
        reader = csv.DictReader(handle)
        keys = [c for c in reader.fieldnames or [] if c not in ("learner_id", "cohort_id", "weekly_minutes")]
        return len({tuple(row[k] for k in keys) for row in reader})


def quality(work: Path, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    datasets = [("assistments", "assistments2009_skill_builder", "temporal"), ("oulad", "oulad", "cold")]
    for name, folder, split in datasets:
        src = SHARED / folder
        if not src.exists():
            results[name] = {"skipped": f"{src} is absent"}
            continue
        data = work / name
        recommender(work, "convert", name, str(src), str(data))
        files = ["--events", str(data / "events.csv"), "--catalog", str(data / "catalog.json")]
        if (data / "learners.csv").exists():
            files += ["--learners", str(data / "learners.csv")]
        report = work / f"{name}-eval.json"
        # OULAD's learner attributes are features only by declaration (docs/oulad-features.json), as
        # the ML docs evaluate it
        env = (
            {**os.environ, "LUBAN_FEATURE_SCHEMA_FILE": str(ROOT / "docs" / "oulad-features.json")}
            if name == "oulad"
            else None
        )
        _, seconds, _ = recommender(work, "evaluate", *files, "--split", split, "--json", str(report), env=env)
        _, train_seconds, peak = recommender(work, "train", *files, "--no-activate", env=env)
        pybkt = pybkt_row(work, data, split)
        if pybkt:
            evaluation = json.loads(report.read_text())
            evaluation["models"]["pybkt"] = pybkt
            report.write_text(json.dumps(evaluation))
        results[name] = {
            "split": split,
            "evaluation": json.loads(report.read_text()),
            "evaluate_seconds": seconds,
            "train_seconds": train_seconds,
            "train_peak_rss_mb": peak,
        }
    return results


PYBKT = ROOT / "bench" / ".venv-pybkt" / "bin" / "python"


def pybkt_row(work: Path, data: Path, split: str) -> dict[str, Any] | None:
    """pyBKT fitted and scored on exactly the same split, through files (its own venv)."""
    if not PYBKT.exists():
        return None
    exchange = work / f"pybkt-{data.name}"
    run(
        [
            PY,
            "-m",
            "bench.pybkt_split",
            "export",
            str(data / "events.csv"),
            str(data / "catalog.json"),
            split,
            str(exchange),
        ]
    )
    _, seconds, _ = run(
        [
            str(PYBKT),
            str(ROOT / "bench" / "pybkt_eval.py"),
            str(exchange / "train.csv"),
            str(exchange / "test.csv"),
            str(exchange / "pred.csv"),
        ],
        timeout=1800,
    )
    scored, _, _ = run([PY, "-m", "bench.pybkt_split", "score", str(exchange), str(exchange / "pred.csv")])
    row = dict(json.loads(scored.strip().splitlines()[-1]))
    row["fit_and_predict_seconds"] = seconds
    return row


def lab_simulate(*args: str) -> None:
    """The lab's simulator (`python -m lab simulate`): the product's policies and the lab's bounds."""
    run([PY, "-m", "lab", "simulate", *args], timeout=3600)


def simulation(work: Path, quick: bool) -> dict[str, Any]:
    learners = "10" if quick else "60"
    out = work / "sim-demo.json"
    lab_simulate("--learners", learners, "--max-modules", "100", "--json", str(out))
    results = {"demo": json.loads(out.read_text())}
    # the service as `make run` deploys it: a model trained on past learners' results active
    out = work / "sim-demo-trained.json"
    lab_simulate(
        "--learners", learners, "--max-modules", "100", "--history", "200" if quick else "2000", "--json", str(out)
    )
    results["demo-trained"] = json.loads(out.read_text())
    junyi = SHARED / "junyi2015_exercise_graph"
    if junyi.exists():
        recommender(work, "convert", "junyi", str(junyi), str(work / "junyi"))
        out = work / "sim-junyi.json"
        lab_simulate(
            "--world",
            "junyi",
            "--catalog",
            str(work / "junyi" / "catalog.json"),
            "--learners",
            "10" if quick else "30",
            "--max-modules",
            "60",
            "--json",
            str(out),
        )
        results["junyi"] = json.loads(out.read_text())
    else:
        results["junyi"] = {"skipped": f"{junyi} is absent"}
    return results


def dashboard(work: Path, quick: bool) -> dict[str, Any]:
    from bench.dashboard import dashboard_bench

    folder = work / "dashboard"
    folder.mkdir()
    return dashboard_bench(folder, learners=2_000 if quick else 10_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="luban-bench-"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": "make bench-quick" if args.quick else "make bench",
    }
    try:
        print("demo world and model ...", flush=True)
        _, results["demo_load_seconds"], _ = recommender(work, "demo")
        _, seconds, _ = recommender(work, "train", "--force")
        results["demo_train_seconds"] = seconds
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("planning", lambda: planning_cost(args.quick)),
            ("demo_planning", lambda: demo_planning(work, args.quick)),
            ("serving", lambda: serving(work, args.quick)),
            ("batch", lambda: batch(work, args.quick)),
            ("quality", lambda: quality(work, args.quick)),
            ("simulation", lambda: simulation(work, args.quick)),
            ("dashboard", lambda: dashboard(work, args.quick)),
        ]
        for name, step in steps:
            print(f"{name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                results[name] = step()
            except Exception as exc:  # a failed section is reported, the others still run
                results[name] = {"error": str(exc)[-2000:]}
            print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = time.perf_counter() - started
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    from bench.report import write_report

    write_report(results, ROOT / "BENCHMARKS.md", PLOTS)
    print(f"wrote BENCHMARKS.md and {OUT / 'results.json'} in {results['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
