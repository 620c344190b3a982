"""The `recommender` command end to end on temporary stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.cli import main
from recommender.service.app import build_app
from recommender.service.demo import DEMO_COHORT, demo_catalog_path, demo_cohort
from tests.conftest import make_settings


def test_demo_world_loads_once_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["--store-url", url, "demo"]) == 0
    assert "2000 learners added" in capsys.readouterr().out
    app = build_app(make_settings(url, tmp_path))
    learners = [x for _, x in app.store.iter_learners()]
    events = app.store.count_events()
    assert len(learners) >= 2000 and events > 10_000
    assert len({x.country for x in learners}) >= 8
    assert {x.cohort_id for x in learners} == {DEMO_COHORT}
    assert len({x.target_role_id for x in learners}) >= 10
    # a demo history is modules studied and their own assessments: they count as studied, and
    # every practiced skill has counted its studies (nothing was checked by item)
    record = app.store.get_learner_record("default", learners[0].learner_id)
    assert record is not None and record.states
    taken = {e.module_id for e in app.store.events_of("default", learners[0].learner_id)}
    assert set(record.studied_module_ids) == taken
    assert all(s.studies_since_check == s.attempts for s in record.states)
    app.close()
    assert main(["--store-url", url, "demo"]) == 0
    assert "0 learners added, 0 assessments recorded" in capsys.readouterr().out
    app = build_app(make_settings(url, tmp_path))
    assert app.store.count_events() == events
    app.close()


def test_a_demo_load_stopped_between_learners_and_results_is_completed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make run` loads the demo world a chunk of learners at a time, their records then their
    results; a Ctrl-C between the two left learners without a history that no later run loaded."""
    whole, stopped = (f"sqlite:///{tmp_path / name}" for name in ("whole.db", "stopped.db"))
    assert main(["--store-url", whole, "demo", "--learners", "300"]) == 0
    app = build_app(make_settings(stopped, tmp_path))
    app.catalogs.load_file(demo_catalog_path())
    cohort = demo_cohort(app.catalogs.require(), 300)
    app.learners.upsert_many("default", [h.learner for h in cohort[:250]])  # the first chunk's learners only
    app.close()
    capsys.readouterr()
    assert main(["--store-url", stopped, "demo", "--learners", "300"]) == 0
    assert "catalog already present, 300 learners added" in capsys.readouterr().out
    apps = [build_app(make_settings(url, tmp_path)) for url in (whole, stopped)]
    try:
        whole_app, stopped_app = apps
        history = [(lid, len(whole_app.store.events_of("default", lid))) for lid, _ in whole_app.store.iter_learners()]
        assert history == [(lid, len(stopped_app.store.events_of("default", lid))) for lid, _ in history]
        assert whole_app.store.count_events() == stopped_app.store.count_events() > 300
    finally:
        for a in apps:
            a.close()


def test_catalog_load_reports_bad_files_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"skills": [{"skill_id": "a"}], "modules": [
        {"module_id": "m1", "skills": [{"skill_id": "a"}], "languages": ["en"], "prerequisite_module_ids": ["m2"]},
        {"module_id": "m2", "skills": [{"skill_id": "b"}], "languages": ["en"], "prerequisite_module_ids": ["m1"]},
    ]}))  # fmt: skip
    assert main(["--store-url", url, "catalog", "load", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "modules[1].skills[0].skill_id: unknown skill 'b'" in err
    from recommender.service.demo import demo_catalog_path

    assert main(["--store-url", url, "catalog", "load", str(demo_catalog_path())]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["modules"] >= 120 and summary["revision"] == 1


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "recommender", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "serve" in out.stdout


def test_the_program_exits_with_the_commands_code(tmp_path: Path) -> None:
    """`python -m recommender` (and the `recommender` script, the same entry) exits with what the
    command returned, after freezing the heap for a quick interpreter shutdown."""
    store = ["--store-url", f"sqlite:///{tmp_path / 's.db'}", "--models-dir", str(tmp_path / "models")]
    run = [sys.executable, "-m", "recommender", *store]
    subprocess.run([*run, "demo", "--learners", "5"], capture_output=True, timeout=300, check=True)
    cohort = tmp_path / "c.csv"
    cohort.write_text("learner_id,languages,target_role_id\na1,fr,cnc-machine-operator\n", encoding="utf-8")
    bad = subprocess.run([*run, "paths", "--cohort", str(cohort), "--out", str(tmp_path / "o.txt")],
                         capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown output format" in bad.stderr
    good = subprocess.run([*run, "paths", "--cohort", str(cohort), "--out", str(tmp_path / "o.jsonl")],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert json.loads((tmp_path / "o.jsonl").read_text(encoding="utf-8"))["learner_id"] == "a1"
