"""`recommender paths` end to end: formats, bad rows, resume after SIGKILL, workers and Dask give
identical output."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from recommender.cli import main
from recommender.domain.catalog import build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.service.cohort_files import ChunkTask
from recommender.service.demo import demo_catalog_path
from recommender.simulation.truth import sample_learners

AS_OF = "2026-11-01T00:00:00+00:00"
COLUMNS = ["learner_id", "cohort_id", "country", "languages", "program", "target_role_id", "chinese_level",
           "weekly_minutes", "experience_years"]  # fmt: skip


def write_cohort(path: Path, n: int, seed: int = 4, *, names: bool = False) -> None:
    """A generated intake file; `names` adds the columns a real one has (full_name, email), which
    become attributes that no model has seen."""
    catalog = build_catalog(*catalog_parts_from_dict(json.loads(demo_catalog_path().read_text(encoding="utf-8"))))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, "full_name", "email"] if names else COLUMNS)
        for i, h in enumerate(sample_learners(catalog, n, np.random.default_rng(seed), prefix="c")):
            x = h.learner
            row = [x.learner_id, "2027", x.country, ";".join(x.languages), x.program, x.target_role_id,
                   x.chinese_level, x.weekly_minutes, x.attributes["experience_years"]]  # fmt: skip
            writer.writerow([*row, f"Student {i}", f"s{i}@example.edu"] if names else row)
            if i == 3:
                writer.writerow(["bad id!", "2027", "RW", "fr", "", "astronaut", 9, 0, 0])


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


@pytest.fixture
def store_args(tmp_path: Path) -> list[str]:
    args = ["--store-url", f"sqlite:///{tmp_path / 's.db'}", "--models-dir", str(tmp_path / "models")]
    assert main([*args, "catalog", "load", str(demo_catalog_path())]) == 0
    return args


def run_paths(store_args: list[str], cohort: Path, out: Path, *extra: str) -> int:
    return main([*store_args, "paths", "--cohort", str(cohort), "--out", str(out), "--as-of", AS_OF, *extra])


def test_jsonl_csv_parquet_and_bad_rows(tmp_path: Path, store_args: list[str]) -> None:
    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 40)
    assert run_paths(store_args, cohort, tmp_path / "p.jsonl", "--steps", "5", "--locale", "zh") == 0
    lines = (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert first["learner_id"] == "c-0000" and "steps" in first and "readiness_now" in first
    assert len(first["steps"]) <= 5 and first["steps"][0]["reasons"][0]["code"].startswith("REASON_CODE_")
    assert any("要求" in r["text"] or "授课" in r["text"] for r in first["steps"][0]["reasons"])
    errors = read_csv(tmp_path / "p.jsonl.errors.csv")
    bad = [e for e in errors if e["learner_id"] == "bad id!"]
    assert bad and bad[0]["line"] == "6" and bad[0]["field"] == "learner.learner_id"
    assert len(lines) + len(errors) == 41
    assert run_paths(store_args, cohort, tmp_path / "p.csv") == 0
    rows = read_csv(tmp_path / "p.csv")
    assert {r["learner_id"] for r in rows} == {json.loads(x)["learner_id"] for x in lines}
    assert run_paths(store_args, cohort, tmp_path / "p.parquet") == 0
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [(r["learner_id"], r["module_id"]) for r in table] == [(r["learner_id"], r["module_id"]) for r in rows]
    assert run_paths(store_args, cohort, tmp_path / "p.txt") == 2


def test_workers_and_chunking_do_not_change_the_output(tmp_path: Path, store_args: list[str]) -> None:
    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 60)
    assert run_paths(store_args, cohort, tmp_path / "one.jsonl") == 0
    assert run_paths(store_args, cohort, tmp_path / "two.jsonl", "--workers", "2", "--chunk-size", "7") == 0
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert (tmp_path / "one.jsonl.errors.csv").read_text() == (tmp_path / "two.jsonl.errors.csv").read_text()


# the scheduler's HTTP server (its metrics) on a free port: 8787, its default, may be another test
# suite's on a shared machine
FREE_PORT = "127.0.0.1:0"


def test_dask_local_cluster_gives_the_same_output(tmp_path: Path, store_args: list[str]) -> None:
    from distributed import Client, LocalCluster

    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 30)
    assert run_paths(store_args, cohort, tmp_path / "local.jsonl") == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=FREE_PORT) as cluster:
        for name in ("dask.jsonl", "again.jsonl"):  # two jobs on one cluster, one after the other
            assert run_paths(store_args, cohort, tmp_path / name, "--scheduler", cluster.scheduler_address,
                             "--chunk-size", "8") == 0  # fmt: skip
        with Client(cluster) as client:
            left = client.run(lambda dask_worker: [n for n in dask_worker.plugins if n.startswith("luban-cohort-")])
        assert left and all(names == [] for names in left.values()), "each job removes its planner from the workers"
    assert (tmp_path / "local.jsonl").read_bytes() == (tmp_path / "dask.jsonl").read_bytes()
    assert (tmp_path / "dask.jsonl").read_bytes() == (tmp_path / "again.jsonl").read_bytes()


def test_resume_after_a_killed_run_matches_an_uninterrupted_one(tmp_path: Path, store_args: list[str]) -> None:
    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 400)
    assert run_paths(store_args, cohort, tmp_path / "full.jsonl", "--chunk-size", "20") == 0
    out = tmp_path / "killed.jsonl"
    command = [sys.executable, "-m", "recommender", *store_args, "paths", "--cohort", str(cohort), "--out", str(out),
               "--as-of", AS_OF, "--chunk-size", "20"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = Path(f"{out}.work")
    deadline = time.monotonic() + 60
    while len(list(work.glob("part-*"))) < 3:
        assert process.poll() is None, "the run finished before it could be killed; make the cohort larger"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    done_before = len(list(work.glob("part-*")))
    assert run_paths(store_args, cohort, out, "--chunk-size", "20", "--resume") == 0
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    assert (tmp_path / "full.jsonl.errors.csv").read_text() == Path(f"{out}.errors.csv").read_text()
    assert done_before >= 3 and not work.exists()


def test_persist_stores_the_cohort(tmp_path: Path, store_args: list[str]) -> None:
    from recommender.service.app import build_app
    from tests.conftest import make_settings

    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 10)
    assert run_paths(store_args, cohort, tmp_path / "p.jsonl", "--persist") == 0
    app = build_app(make_settings(store_args[1], tmp_path))
    assert app.store.count_learners() == 10
    assert app.store.get_learner("default", "c-0003") is not None
    app.close()


def test_prior_results_file_gives_states_and_studied_modules(tmp_path: Path, store_args: list[str]) -> None:
    """Three learners alike but for their history: none, a failed module-level result on a
    prerequisite (the module is studied, and retaught), and the same score as an item result
    (evidence only, not studied)."""
    cohort = tmp_path / "cohort.csv"
    with cohort.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for learner_id in ("new", "studied", "item"):
            writer.writerow([learner_id, "2027", "NG", "en", "manufacturing", "cnc-machine-operator", 0, 600, 0])
    assert run_paths(store_args, cohort, tmp_path / "before.jsonl") == 0
    before = {p["learner_id"]: p for p in map(json.loads, (tmp_path / "before.jsonl").read_text().splitlines())}
    first = before["new"]["steps"][0]["module_id"]
    assert [s["module_id"] for s in before["studied"]["steps"]] == [s["module_id"] for s in before["new"]["steps"]]
    events = tmp_path / "events.csv"
    events.write_text(
        "event_id,learner_id,module_id,item_id,score,occurred_at\n"
        f"e1,studied,{first},,0.1,2026-10-30T00:00:00+00:00\n"
        f"e2,item,{first},q1,0.1,2026-10-30T00:00:00+00:00\n"
    )
    assert run_paths(store_args, cohort, tmp_path / "after.jsonl", "--events", str(events)) == 0
    after = {p["learner_id"]: p for p in map(json.loads, (tmp_path / "after.jsonl").read_text().splitlines())}
    steps = {k: [s["module_id"] for s in p["steps"]] for k, p in after.items()}
    assert after["new"] == before["new"]
    # the same failed score: both retake the module first, and only the module assessment made it studied
    assert steps["studied"][0] == steps["item"][0] == first
    codes = {k: [r["code"] for r in after[k]["steps"][0]["reasons"]] for k in ("studied", "item")}
    assert "REASON_CODE_REMEDIATE" in codes["studied"] and "REASON_CODE_REMEDIATE" not in codes["item"]


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_prior_results_that_stall_a_skill_start_the_path_with_a_skill_check(
    tmp_path: Path, store_args: list[str], suffix: str
) -> None:
    """Three low module results on a role skill in the prior results: the learner's batch path
    starts with a skill check, in every output format; a fresh learner's does not."""
    cohort = tmp_path / "cohort.csv"
    with cohort.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for learner_id in ("new", "stalled"):
            writer.writerow([learner_id, "2027", "NG", "en", "manufacturing", "cnc-machine-operator", 0, 600, 0])
    events = tmp_path / "events.csv"
    events.write_text(
        "event_id,learner_id,module_id,item_id,score,occurred_at\n"
        + "".join(f"e{i},stalled,workshop-safety-101,,0.3,2026-10-2{i}T00:00:00+00:00\n" for i in range(3))
    )
    out = tmp_path / f"paths.{suffix}"
    assert run_paths(store_args, cohort, out, "--events", str(events)) == 0
    if suffix == "jsonl":
        paths = {p["learner_id"]: p for p in map(json.loads, out.read_text().splitlines())}
        first = paths["stalled"]["steps"][0]
        assert first["kind"] == "STEP_KIND_SKILL_CHECK" and first["module_id"] == ""
        assert first["check_skill_ids"] == ["workshop-safety"]
        assert {s["kind"] for s in paths["new"]["steps"]} == {"STEP_KIND_STUDY"}
        return
    rows = read_csv(out) if suffix == "csv" else pq.read_table(out).to_pylist()
    first_rows = {r["learner_id"]: r for r in rows if int(r["position"]) == 1}
    assert first_rows["stalled"]["kind"] == "skill_check"
    assert first_rows["stalled"]["check_skill_ids"] == "workshop-safety"
    assert {r["kind"] for r in rows if r["learner_id"] == "new"} == {"study"}


def test_a_dask_worker_without_the_job_fails_the_chunk_with_a_reason() -> None:
    """A chunk that lands on a worker where the job's planner is not installed fails, naming the
    job and the worker, instead of waiting."""
    from distributed import Client, LocalCluster

    from recommender.service.dask_job import plan_on_worker

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=FREE_PORT) as cluster,
        Client(cluster) as client,
    ):
        future = client.submit(plan_on_worker, "luban-cohort-missing", ChunkTask(0, [], {}, {}), pure=False)
        with pytest.raises(RuntimeError, match="luban-cohort-missing is not installed on Dask worker"):
            future.result(timeout=60)


def test_paths_locale_fr_writes_french_and_without_a_locale_each_learners_language(
    tmp_path: Path, store_args: list[str]
) -> None:
    """Issue #24: the README's francophone example wrote English."""
    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 12)
    assert run_paths(store_args, cohort, tmp_path / "fr.jsonl", "--steps", "3", "--locale", "fr") == 0
    paths = [json.loads(x) for x in (tmp_path / "fr.jsonl").read_text(encoding="utf-8").splitlines()]
    assert paths and {p["locale"] for p in paths} == {"fr"}
    texts = [r["text"] for p in paths for s in p["steps"] for r in s["reasons"]]
    assert texts and all(t.startswith(("Renforce", "Le métier", "Enseigné", "Ouvre", "Reprenez")) for t in texts)
    assert run_paths(store_args, cohort, tmp_path / "own.jsonl", "--steps", "3") == 0
    own = [json.loads(x) for x in (tmp_path / "own.jsonl").read_text(encoding="utf-8").splitlines()]
    languages = {r["learner_id"]: r["languages"].split(";")[0] for r in read_csv(cohort)}
    assert [p["locale"] for p in own] == [languages[p["learner_id"]] for p in own]


def test_planning_a_chunk_makes_no_reference_cycles(tmp_path: Path) -> None:
    """A pool worker freezes what a chunk leaves without a collector pass after its first chunk
    (collections_after_chunk): that holds only while planning, explaining and encoding make no
    reference cycles, which would then outlive their use until the worker exits."""
    import gc
    from datetime import datetime

    from recommender.api.export import JsonlEncoder
    from recommender.datasets.formats import read_records
    from recommender.service.cohort_files import CohortOptions, plan_chunk
    from recommender.service.recommend import Planner

    catalog = build_catalog(*catalog_parts_from_dict(json.loads(demo_catalog_path().read_text(encoding="utf-8"))))
    planner = Planner.build(catalog, None, 0.8, check_after_studies=3, max_module_attempts=3)
    cohort = tmp_path / "cohort.csv"
    write_cohort(cohort, 400, seed=9)
    rows = list(read_records(cohort))
    encode, options, now = JsonlEncoder(), CohortOptions(), datetime.fromisoformat(AS_OF)
    enabled = gc.isenabled()
    gc.disable()
    try:
        plan_chunk(planner, ChunkTask(0, rows[:200], {}), options, now, encode)  # warms every cache up
        gc.collect()
        bad = [r for r in rows if r[1]["learner_id"] == "bad id!"]  # rejected rows make none either
        result = plan_chunk(planner, ChunkTask(1, rows[200:] + bad, {}), options, now, encode)
        assert result.planned > 150 and len(result.errors) == 1
        assert gc.collect() == 0, "planning made reference cycles: collect after every chunk again"
    finally:
        if enabled:
            gc.enable()
