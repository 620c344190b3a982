"""The learning-efficiency simulator on a tiny world, end to end through the service code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.cli import main
from recommender.domain.catalog import build_catalog
from recommender.service.simulate import cohort_for, historical_popularity, simulate
from tests.conftest import tiny_catalog


def test_policies_run_on_the_same_learners_and_respect_prerequisites(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 6, seed=3)
    report = simulate(
        catalog, cohort, world_name="tiny", seed=3, max_modules=25,
        popularity=historical_popularity(catalog, 3, learners=30), workdir=tmp_path,
    )  # fmt: skip
    doc = report.to_json()
    assert set(doc["policies"]) == {"adaptive", "oracle", "syllabus", "popularity"}
    for name, summary in doc["policies"].items():
        assert summary["learners"] == 6, name
        assert 0 <= summary["reached_share"] <= 1
        assert len(doc["curves"][name]) == 26
    assert doc["policies"]["adaptive"]["prerequisite_violations"] == 0
    checks = {name: summary["checks_mean"] for name, summary in doc["policies"].items()}
    assert checks["adaptive"] > 0, "the adaptive learners answer checks (skill or readiness) with item results"
    assert checks["oracle"] == checks["syllabus"] == checks["popularity"] == 0
    assert doc["policies"]["syllabus"]["prerequisite_violations"] == 0, "the syllabus follows prerequisite order"
    for name in ("adaptive", "oracle"):
        curve = doc["curves"][name]
        assert curve[-1] >= curve[0], f"{name} learners end at least as ready as they started"
    oracle = doc["policies"]["oracle"]
    assert oracle["reached_share"] >= doc["policies"]["adaptive"]["reached_share"], "true mastery plans no worse"
    again = simulate(
        catalog, cohort, world_name="tiny", seed=3, max_modules=25,
        popularity=historical_popularity(catalog, 3, learners=30), workdir=tmp_path,
    ).to_json()  # fmt: skip
    assert again == doc, "seeded: the same report twice"


def test_simulate_command_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    assert main(["simulate", "--learners", "3", "--max-modules", "8", "--json", str(out)]) == 0
    assert "adaptive" in capsys.readouterr().out
    assert json.loads(out.read_text())["world"] == "demo"
    assert main(["simulate", "--world", "junyi"]) == 2
