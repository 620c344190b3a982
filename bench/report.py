"""BENCHMARKS.md from bench/out/results.json (and PNG plots where matplotlib is installed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = """| target (issue) | measured | met? |
|---|---|---|
"""


def _fmt(x: Any, digits: int = 1) -> str:
    return f"{x:,.{digits}f}" if isinstance(x, int | float) else str(x)


def _serving_rows(table: dict[str, Any], modes: tuple[str, ...], latencies: tuple[str, ...], bad: str) -> list[str]:
    """Markdown rows: QPS, the latency columns, the ratio to echo at the same concurrency, failures."""
    rows = []
    for c in (1, 8, 32):
        echo = table[f"echo@{c}"]
        for mode in modes:
            r = table[f"{mode}@{c}"]
            ratio = r["qps"]["median"] / echo["qps"]["median"]
            cells = [
                mode,
                str(c),
                _range(r["qps"], 0),
                *(_range(r[k], 2) for k in latencies),
                f"{ratio:.2f}",
                str(r[bad]),
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def _range(d: dict[str, float], digits: int = 1) -> str:
    return f"{_fmt(d['median'], digits)} ({_fmt(d['min'], digits)}-{_fmt(d['max'], digits)})"


def write_report(results: dict[str, Any], path: Path, plots: Path) -> None:
    lines = [
        "# Luban Path benchmarks",
        "",
        f"Produced by `{results['command']}` on {results['date']} "
        f"({results['machine']['cpus']} CPUs, {results['machine']['platform']}, Python {results['machine']['python']}); "
        f"total {results['total_seconds']:.0f} s. Speed figures are medians over repeated runs with (min-max), "
        "next to a reference measured in the same run. Raw numbers: `bench/out/results.json` (not committed).",
        "",
    ]
    targets: list[tuple[str, str, str]] = []
    serving = results.get("serving", {})
    if "echo@8" in serving:
        lines += [
            "## Serving (separate load-generator process, grpc.aio, bounded request counts)",
            "",
            "| call | concurrency | QPS | p50 ms | p99 ms | QPS / echo | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += _serving_rows(serving, ("echo", "recommend", "record", "profile"), ("p50_ms", "p99_ms"), "errors")
        lines.append("")
        lines.append(
            "Errors on `recommend` are FAILED_PRECONDITION answers for demo learners whose role cannot be "
            "reached in their languages (the load generator cycles through all 2,000 demo learners)."
        )
        lines.append("")
        h2 = serving.get("h2load", {})
        if "echo@8" in h2:
            lines += [
                "Second measurement: the same calls driven by `h2load` (nghttp2's C load generator; one connection, "
                "N concurrent streams, one pre-encoded request repeated, so the same learner every call; h2load "
                "reports the mean latency, not percentiles, and counts HTTP status only, not gRPC status).",
                "",
                "| call | concurrency | QPS | mean ms | QPS / echo | failed |",
                "|---|---|---|---|---|---|",
            ]
            lines += _serving_rows(h2, ("echo", "recommend", "profile"), ("mean_ms",), "failed")
            lines.append("")
        elif "skipped" in h2:
            lines += [f"h2load measurement skipped: {h2['skipped']}.", ""]
        for mode, label in (("recommend", "RecommendPath"), ("record", "RecordAssessment (durable)")):
            r, e = serving[f"{mode}@8"], serving["echo@8"]
            ratio = r["qps"]["median"] / e["qps"]["median"]
            p99 = r["p99_ms"]["median"] / e["p99_ms"]["median"]
            targets.append(
                (
                    f"{label} >= 0.5x echo QPS at concurrency 8, p99 <= 2x echo p99",
                    f"{ratio:.2f}x QPS, p99 {p99:.1f}x",
                    "yes" if ratio >= 0.5 and p99 <= 2 else "no",
                )
            )
        for batch in (100, 1000):
            r = serving.get(f"ingest{batch}")
            if r:
                lines.append(
                    f"- RecordAssessments, {batch} results per message: "
                    f"{_range(r['events_per_s'], 0)} events/s durable on SQLite ({r['rejected']} rejected)"
                )
        over = serving.get("overload@200")
        if over and over["health_total"]:
            share = over["health_ok"] / over["health_total"]
            lines.append(
                f"- Overload: 200 concurrent RecommendPath callers ({over['errors']} of {over['requests']} calls "
                f"refused or failed) while grpc.health.v1 Check was probed every 0.25 s with a 2 s deadline: "
                f"{over['health_ok']} of {over['health_total']} probes answered SERVING ({share:.0%})"
            )
            targets.append(
                ("health probes under overload: 100 % SERVING", f"{share:.1%}", "yes" if share == 1 else "no")
            )
        if "ingest1000" in serving:
            v = serving["ingest1000"]["events_per_s"]["median"]
            targets.append(
                ("ingest >= 20,000 events/s durable (SQLite)", f"{v:,.0f} events/s", "yes" if v >= 20000 else "no")
            )
        lines.append("")
    planning = results.get("planning", {})
    if "median_ms" in planning:
        lines += [
            "## Planning cost in process",
            "",
            f"10-step path on a generated 1,000-module catalog: median {planning['median_ms']:.2f} ms "
            f"(median of {planning.get('repeats', 1)} processes, {planning['n']} learners each; their medians "
            f"ranged {planning['runs_median_ms']['min']:.2f}-{planning['runs_median_ms']['max']:.2f} ms), "
            f"p90 {planning['p90_ms']:.2f} ms.",
            "",
        ]
        targets.append(
            (
                "RecommendPath planning <= 2 ms median (1,000 modules)",
                f"{planning['median_ms']:.2f} ms",
                "yes" if planning["median_ms"] <= 2 else "no",
            )
        )
    demo = results.get("demo_planning", {})
    if "kernel" in demo:
        k, r = demo["kernel"], demo["reference"]

        def fig(d: dict[str, float], unit: str) -> str:
            return f"{d['median']:,.0f} {unit} ({d['min']:,.0f}-{d['max']:,.0f})"

        lines += [
            "## Planning on the demo world: compiled step loop and numpy reference",
            "",
            f"{demo['learners']} demo learners (model {demo['model'] or 'none'}), planned in process by the service's "
            f"planner (model scores, learner state, planning, reasons; no store read): medians of "
            f"{demo['repeats']} processes, min-max in brackets. Identical paths both ways: {demo['identical_paths']}.",
            "",
            "| planner | one learner a call: wall, median | p90 | CPU, median | all in one call: wall | CPU |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {fig(d['one_median_us'], 'us')} | {fig(d['one_p90_us'], 'us')} | "
                f"{fig(d['one_cpu_median_us'], 'us')} | {fig(d['batch_ms'], 'ms')} | {fig(d['batch_cpu_ms'], 'ms')} |"
                for name, d in (("compiled (default)", k), ("numpy reference (`LUBAN_PLANNER_KERNEL=false`)", r))
            ),
            "",
            "- CPU: the planning thread's own CPU time, which moves far less than wall time with the load of "
            "whatever else runs on the machine",
            f"- a fresh process's first planning call (Numba imported, the compiled code loaded from its disk "
            f"cache): {fig(demo['first_call_ms'], 'ms')}",
            "",
        ]
    batch = results.get("batch", {})
    if batch and "error" not in batch:
        lines += [
            "## Batch paths (`recommender paths`)",
            "",
            "| cohort | runner | learners/s end to end | learners/s once running | seconds | peak RSS MB |",
            "|---|---|---|---|---|---|",
        ]
        notes = [
            "- end to end: cohort size / the command's wall time, process start-up included (about 1 s of "
            "imports, store and model loading); once running: the rate the command reports (reading, "
            "planning, writing)"
        ]
        for key, r in batch.items():
            size, what = key.split(":")
            if isinstance(r, dict):
                running = r.get("running_learners_per_s")
                lines.append(
                    f"| {int(size):,} | {what} | {r['learners_per_s']:.0f} | "
                    f"{f'{running:.0f}' if running is not None else '-'} | {r['seconds']:.1f} | "
                    f"{r.get('peak_rss_mb', '-')} |"
                )
            elif what == "distinct_profiles":
                notes.append(
                    f"- {int(size):,}-learner cohort: {r:,} distinct planning inputs (the planner memoizes paths of "
                    "history-less learners with the same features; a more varied cohort plans more paths)"
                )
            elif what == "dask_identical_to_local":
                notes.append(f"- {int(size):,}-learner cohort: Dask output identical to the local run: {r}")
            elif what == "kernel_identical_to_reference":
                notes.append(f"- {int(size):,}-learner cohort with prior results: the compiled planner's output "
                             f"identical to the numpy reference's (`+reference`, `LUBAN_PLANNER_KERNEL=false`): {r}")  # fmt: skip
            elif what == "prior_workers2_identical_to_local":
                notes.append(f"- {int(size):,}-learner cohort with prior results: `--workers 2` output identical "
                             f"to the local run: {r}")  # fmt: skip
        if any(k.endswith(":dask2-cold") for k in batch):
            notes.append(
                "- `dask2-cold`: the first job on a fresh two-worker `LocalCluster` (the workers import "
                "everything first); `dask2`: the same job again on the same cluster, as on one already "
                "up; the Dask target below compares `dask2` with `local`"
            )
        if any(k.endswith(":local+prior") for k in batch):
            notes.append(
                "- `+prior`: the same cohort with a prior-results file giving every learner two module "
                "results (`--events`): no two learners plan from the same inputs, so every path is planned "
                "(the memo never applies); the hardest case"
            )
        if any(k.endswith(":local+names") for k in batch):
            notes.append(
                "- `local+names`: the same cohort file with `full_name` and `email` columns, as a real intake "
                "file has (they become attributes no model has seen, so they do not split the memo)"
            )
        lines += ["", *notes]
        local = next((r for k, r in batch.items() if k.endswith(":local")), None)
        dask = next((r for k, r in batch.items() if k.endswith(":dask2")), None)
        # "local" in the issue is as opposed to Dask: one process, or --workers 2 on this machine
        for key, r in batch.items():
            if key.endswith(":local") and isinstance(r, dict):
                size = int(key.split(":")[0])
                runs = [(name, batch.get(f"{size}:{name}")) for name in ("local", "workers2")]
                measured = "; ".join(
                    f"{name}: {run['learners_per_s']:,.0f}/s end to end, "
                    f"{run.get('running_learners_per_s', 0.0):,.0f}/s once running"
                    for name, run in runs
                    if isinstance(run, dict)
                )
                best_end = max(run["learners_per_s"] for _, run in runs if isinstance(run, dict))
                best_running = max(run.get("running_learners_per_s", 0.0) for _, run in runs if isinstance(run, dict))
                met = "yes" if best_end >= 5000 else ("once running" if best_running >= 5000 else "no")
                targets.append((f"batch >= 5,000 learners/s local ({size:,} new learners)", measured, met))
        if local and dask:
            ratio = local["learners_per_s"] / dask["learners_per_s"]
            targets.append(
                ("Dask LocalCluster within 1.5x of local", f"{ratio:.2f}x slower", "yes" if ratio <= 1.5 else "no")
            )
        lines.append("")
    quality = results.get("quality", {})
    if quality:
        lines += ["## Learning quality (same split for every model)", ""]
        for name, q in quality.items():
            if "skipped" in q or "error" in q:
                lines.append(f"- {name}: {q.get('skipped') or q.get('error')}")
                continue
            ev = q["evaluation"]
            lines += [
                f"### {name}, {q['split']} split",
                "",
                "| model | AUC | RMSE | ECE | P@10 | R@10 | NDCG@10 | coverage |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for model, m in ev["models"].items():
                cells = [
                    m.get(k, "-") for k in ("auc", "rmse", "ece", "precision@10", "recall@10", "ndcg@10", "coverage")
                ]
                lines.append(f"| {model} | " + " | ".join(_fmt(c, 4) for c in cells) + " |")
            lines += [
                "",
                f"Training (BKT fit + both LightFM models, evaluation included): {q['train_seconds']:.1f} s, "
                f"peak RSS {q['train_peak_rss_mb']} MB.",
                "",
            ]
            targets.append(
                (
                    f"training on {name} < 60 s",
                    f"{q['train_seconds']:.1f} s",
                    "yes" if q["train_seconds"] < 60 else "no",
                )
            )
        lines += [
            "pyBKT (C++ build) is fitted and scored on exactly the same split, from its own virtual environment "
            "(`make pybkt`, files exchanged by `bench/pybkt_split.py`); its row is absent when that environment "
            "could not be built. pyBKT sees one skill per row (a collapsed multi-skill problem under its first skill).",
            "",
        ]
    sim = results.get("simulation", {})
    for world, doc in sim.items():
        if isinstance(doc, dict) and "skipped" in doc:
            lines += [f"## Simulator, {world} world", "", f"Skipped: {doc['skipped']}.", ""]
        if not isinstance(doc, dict) or "policies" not in doc:
            continue
        trained = (
            f", the service with a model trained on {doc['history_learners']} past learners of the same world"
            if doc.get("model_version")
            else ""
        )
        lines += [
            f"## Simulator, {doc['world']} world ({doc['learners']} learners, cap {doc['max_modules']} modules{trained})",
            "",
            "| policy | reached readiness | stopped short | modules (mean, checks included) | checks (mean) | "
            "minutes (mean) | gain/step | prerequisite violations | tracking error |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, p in doc["policies"].items():
            lines.append(
                f"| {name} | {p['reached_share']:.0%} | {p.get('stopped_short', '-')} | {p['modules_mean']:.1f} | "
                f"{p.get('checks_mean', 0.0):.1f} | "
                f"{p['minutes_mean']:.0f} | {p['gain_per_step']:.3f} | {p['prerequisite_violations']} | "
                f"{_tracking(p.get('tracking_error'))} |"
            )
        reduction = doc["adaptive_vs_syllabus_module_reduction"]
        oracle = doc.get("oracle_vs_syllabus_module_reduction", float("nan"))
        lines += [
            "",
            f"Adaptive vs syllabus: {reduction:.1%} fewer modules{_interval(doc, 'adaptive')}. Oracle (the same planner fed the "
            f"hidden true mastery): {oracle:.1%}{_interval(doc, 'oracle')}. What the oracle misses is the planner's own model of "
            "learning; what adaptive misses beyond it is knowledge tracing."
            + (
                f" Bayes (the planner fed a particle filter that knows the simulator's equations, population and module "
                f"effects, not the learner, from the same observations): {doc['bayes_vs_syllabus_module_reduction']:.1%}"
                f"{_interval(doc, 'bayes')}: adaptive to bayes is what better tracing could still win, bayes to oracle "
                "what no tracing of these observations can."
                if "bayes_vs_syllabus_module_reduction" in doc
                else ""
            )
            + " Stopped short: learners the policy had "
            "nothing more to give (a readiness check included) while they were truly not ready, counted at the cap. "
            "Tracking error: the mean |estimate - true mastery| over the role's skills that the policy planned on, "
            "per decision (- for fixed orders).",
            "",
        ]
        if world == "demo":
            targets.append(
                (
                    "simulator: >= 30 % fewer modules than the syllabus, zero violations",
                    f"{reduction:.1%}, {doc['policies']['adaptive']['prerequisite_violations']} violations",
                    "yes" if reduction >= 0.3 and doc["policies"]["adaptive"]["prerequisite_violations"] == 0 else "no",
                )
            )
    dashboard = results.get("dashboard", {})
    if dashboard and "error" not in dashboard:
        lines += _dashboard_lines(dashboard)
        worst = max(dashboard["overview"]["max_ms"], dashboard["after_a_new_result"]["max_ms"])
        targets.append(
            (
                f"dashboard cohort overview < 1 s server time ({dashboard['learners']:,} learners)",
                f"median {dashboard['overview']['median_ms']:.0f} ms, worst {worst:.0f} ms "
                f"(first snapshot {dashboard['first_request_ms'] / 1000:.1f} s)",
                "yes" if worst < 1000 else "no",
            )
        )
    plot_links = _plots(results, plots)
    lines += ["## Targets", "", TARGETS.rstrip()] + [f"| {a} | {b} | {c} |" for a, b, c in targets] + [""]
    lines += plot_links
    for name in ("serving", "batch", "quality", "simulation", "planning", "demo_planning", "dashboard"):
        if isinstance(results.get(name), dict) and "error" in results[name]:
            lines += [f"**{name} failed in this run:**", "", "```", results[name]["error"][-1500:], "```", ""]
    path.write_text("\n".join(lines) + "\n")


def _dashboard_lines(d: dict[str, Any]) -> list[str]:
    rows = [
        ("cohort overview `/` (cohort, role and stall filters)", d["overview"]),
        ("cohort overview right after a learner's new result", d["after_a_new_result"]),
        ("priorities `/priorities`", d["priorities"]),
    ]
    return [
        f"## Dashboard ({d['learners']:,}-learner cohort, server time per request)",
        "",
        "| request | median ms | p90 ms | max ms | requests |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {r['max_ms']:.0f} | {r['requests']} |"
            for name, r in rows
        ),
        "",
        f"- server time: the dashboard's own `Server-Timing` header, from a separate `recommender dashboard` "
        f"process over a store with the demo world at {d['learners']:,} learners and a trained model",
        f"- the tenant's first snapshot (every learner planned toward readiness, up to 50 steps): "
        f"{d['first_request_ms'] / 1000:.1f} s, built once at start (and again in the background after a model "
        "activation or catalog change, or hourly); later requests aggregate it, re-planning only learners "
        "with new data",
        "",
    ]


def _tracking(error: float | None) -> str:
    return "-" if error is None else f"{error:.3f}"


def _interval(doc: dict[str, Any], name: str) -> str:
    low, high = doc.get(f"{name}_vs_syllabus_module_reduction_ci95", [float("nan")] * 2)
    return f" (95 % CI {low:.1%} to {high:.1%}, paired bootstrap over learners)"


def _plots(results: dict[str, Any], folder: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["(plots need matplotlib: `pip install -e '.[bench]'`)"]
    folder.mkdir(parents=True, exist_ok=True)
    links: list[str] = []
    serving = results.get("serving", {})
    if "echo@8" in serving:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        modes = ["echo", "recommend", "record", "profile"]
        for i, c in enumerate((1, 8, 32)):
            ax.bar(
                [x + i * 0.25 for x in range(4)],
                [serving[f"{m}@{c}"]["p99_ms"]["median"] for m in modes],
                0.25,
                label=f"concurrency {c}",
            )
        ax.set_xticks([x + 0.25 for x in range(4)], modes)
        ax.set_ylabel("p99 latency (ms)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "latency.png", dpi=100)
        plt.close(fig)
        links.append("![p99 latency by call and concurrency](docs/bench/latency.png)")
    sim = results.get("simulation", {}).get("demo")
    if isinstance(sim, dict) and "curves" in sim:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for name, curve in sim["curves"].items():
            ax.plot(curve, label=name)
        ax.set_xlabel("modules taken")
        ax.set_ylabel("mean true readiness")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "simulator.png", dpi=100)
        plt.close(fig)
        links.append("![simulator learning curves](docs/bench/simulator.png)")
    batch = results.get("batch", {})
    rows = [(k, r["learners_per_s"]) for k, r in batch.items() if isinstance(r, dict) and "learners_per_s" in r]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar([k for k, _ in rows], [v for _, v in rows])
        ax.set_ylabel("learners/s")
        fig.tight_layout()
        fig.savefig(folder / "batch.png", dpi=100)
        plt.close(fig)
        links.append("![batch learners/s by runner](docs/bench/batch.png)")
    return links


if __name__ == "__main__":
    write_report(json.loads(Path(sys.argv[1]).read_text()), Path("BENCHMARKS.md"), Path("docs/bench"))
