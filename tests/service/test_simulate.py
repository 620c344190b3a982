"""The learning-efficiency simulator on a tiny world, end to end through the service code."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommender.cli import main
from recommender.domain.catalog import build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.service.demo import demo_catalog_path
from recommender.service.simulate import cohort_for, historical_popularity, paired_reduction_interval, simulate
from tests.conftest import tiny_catalog


def test_policies_run_on_the_same_learners_and_respect_prerequisites(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 6, seed=3)
    report = simulate(
        catalog, cohort, world_name="tiny", seed=3, max_modules=25,
        popularity=historical_popularity(catalog, 3, learners=30), workdir=tmp_path,
    )  # fmt: skip
    doc = report.to_json()
    assert set(doc["policies"]) == {"adaptive", "bayes", "oracle", "syllabus", "popularity"}
    for name, summary in doc["policies"].items():
        assert summary["learners"] == 6, name
        assert 0 <= summary["reached_share"] <= 1
        assert len(doc["curves"][name]) == 26
    assert doc["policies"]["adaptive"]["prerequisite_violations"] == 0
    checks = {name: summary["checks_mean"] for name, summary in doc["policies"].items()}
    assert checks["adaptive"] > 0, "the adaptive learners answer checks (skill or readiness) with item results"
    assert checks["oracle"] == checks["syllabus"] == checks["popularity"] == 0, "they never check"
    assert doc["policies"]["syllabus"]["prerequisite_violations"] == 0, "the syllabus follows prerequisite order"
    for name in ("adaptive", "oracle"):
        curve = doc["curves"][name]
        assert curve[-1] >= curve[0], f"{name} learners end at least as ready as they started"
    oracle = doc["policies"]["oracle"]
    assert oracle["reached_share"] >= doc["policies"]["adaptive"]["reached_share"], "true mastery plans no worse"
    assert oracle["tracking_error"] == oracle["tracking_bias"] == 0.0, "the oracle plans on the truth itself"
    adaptive = doc["policies"]["adaptive"]
    assert 0.0 < adaptive["tracking_error"] <= 1.0 and abs(adaptive["tracking_bias"]) <= adaptive["tracking_error"]
    for name in ("syllabus", "popularity"):
        assert doc["policies"][name]["tracking_error"] is None, f"{name} plans on no estimate"
    bayes = doc["policies"]["bayes"]
    assert 0.0 < bayes["tracking_error"] < adaptive["tracking_error"], "the best tracing of the same observations"
    assert (
        doc["bayes_vs_syllabus_module_reduction"]
        == 1 - bayes["modules_mean"] / doc["policies"]["syllabus"]["modules_mean"]
    )
    assert "bayes, the planner fed the best tracing" in report.table()
    again = simulate(
        catalog, cohort, world_name="tiny", seed=3, max_modules=25,
        popularity=historical_popularity(catalog, 3, learners=30), workdir=tmp_path,
    ).to_json()  # fmt: skip
    assert again == doc, "seeded: the same report twice"


def test_a_learner_no_policy_can_teach_stops_short_and_counts_at_the_cap(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    taught = {lang for m in catalog.modules.values() for lang in m.languages}
    assert "sw" not in taught
    who = cohort_for(catalog, "demo", 1, seed=3)[0]
    stranded = replace(who, learner=replace(who.learner, languages=("sw",), chinese_level=0))
    doc = simulate(
        catalog, [stranded], world_name="tiny", seed=3, max_modules=12,
        popularity=historical_popularity(catalog, 3, learners=30), workdir=tmp_path,
    ).to_json()  # fmt: skip
    for name, summary in doc["policies"].items():
        assert summary["stopped_short"] == 1, name
        assert summary["reached_share"] == 0 and summary["modules_mean"] == 12, name
    reachable = simulate(
        catalog, cohort_for(catalog, "demo", 6, seed=3), world_name="tiny", seed=3, max_modules=25,
        policies=("syllabus",), workdir=tmp_path,
    ).to_json()  # fmt: skip
    assert reachable["policies"]["syllabus"]["stopped_short"] == 0, "a fixed order is followed again, never ends"


def test_simulate_command_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    assert main(["simulate", "--learners", "3", "--max-modules", "8", "--json", str(out)]) == 0
    assert "adaptive" in capsys.readouterr().out
    assert json.loads(out.read_text())["world"] == "demo"
    assert main(["simulate", "--world", "junyi"]) == 2
    assert main(["simulate", "--history", "-1"]) == 2
    trained = tmp_path / "trained.json"
    args = ["simulate", "--learners", "2", "--max-modules", "4", "--history", "30"]
    assert main([*args, "--json", str(trained)]) == 0
    assert "degenerate BKT fits reset" in capsys.readouterr().out
    doc = json.loads(trained.read_text())
    assert doc["reset_degenerate_bkt"] is True and doc["model_version"]
    assert main([*args, "--keep-degenerate-bkt", "--json", str(trained)]) == 0
    assert "degenerate BKT fits kept" in capsys.readouterr().out
    assert json.loads(trained.read_text())["reset_degenerate_bkt"] is False
    chosen = tmp_path / "chosen.json"
    assert (
        main(["simulate", "--learners", "2", "--max-modules", "4", "--policies", "bayes", "--json", str(chosen)]) == 0
    )
    printed = capsys.readouterr().out
    assert set(json.loads(chosen.read_text())["policies"]) == {"bayes", "syllabus"}, "the baseline always runs"
    assert "bayes, the planner fed" in printed and "oracle" not in printed and "adaptive" not in printed
    assert main(["simulate", "--policies", "adaptive,bogus"]) == 2
    assert main(["simulate", "--oracle-noise", "-0.1"]) == 2
    assert main(["simulate", "--oracle-margin", "1"]) == 2


def test_a_noisy_oracle_plans_on_noisy_truth_and_leaves_the_other_policies_alone(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 6, seed=3)
    policies = ("adaptive", "oracle", "syllabus")

    def run(noise: float, margin: float) -> dict[str, Any]:
        return simulate(
            catalog, cohort, world_name="tiny", seed=3, max_modules=25, policies=policies, workdir=tmp_path,
            oracle_noise=noise, oracle_margin=margin,
        ).to_json()  # fmt: skip

    exact, noisy = run(0.0, 0.25), run(0.3, 0.25)
    assert noisy == run(0.3, 0.25), "seeded: the noise is drawn the same way twice"
    assert noisy["curves"]["oracle"] != exact["curves"]["oracle"], "the oracle sees (and plans on) the noise"
    assert run(0.0, 0.0)["curves"]["oracle"] != exact["curves"]["oracle"], "and plans with the margin asked for"
    for name in ("adaptive", "syllabus"):
        assert noisy["policies"][name] == exact["policies"][name], f"{name} draws nothing from the oracle's noise"
    # what the oracle plans on is off the truth by the noise: E|N(0, 0.3)| = 0.24, less where clipped to [0, 1]
    assert 0.1 < noisy["policies"]["oracle"]["tracking_error"] < 0.24
    assert (noisy["oracle_noise"], noisy["oracle_margin"]) == (0.3, 0.25)
    with pytest.raises(ValueError, match="oracle_noise"):
        run(-0.1, 0.0)


def test_a_model_trained_on_past_learners_is_active_for_every_policy(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 4, seed=5)
    past = cohort_for(catalog, "demo", 40, seed=5, past=True)
    assert not {h.learner.learner_id for h in past} & {h.learner.learner_id for h in cohort}
    report = simulate(
        catalog, cohort, world_name="tiny", seed=5, max_modules=15, policies=("adaptive", "syllabus"),
        workdir=tmp_path, history=past,
    )  # fmt: skip
    doc = report.to_json()
    assert report.model_version and doc["model_version"] == report.model_version
    assert report.model_version in report.table()
    assert {r.model_version for r in report.results.values()} == {report.model_version}, "active in each service"
    untrained = simulate(
        catalog, cohort, world_name="tiny", seed=5, max_modules=15, policies=("adaptive", "syllabus"), workdir=tmp_path
    )  # fmt: skip
    assert untrained.model_version == "" and "active model" not in untrained.table()
    assert doc["policies"]["syllabus"] == untrained.to_json()["policies"]["syllabus"], "a fixed order ignores models"


def test_paired_reduction_interval() -> None:
    assert paired_reduction_interval([10, 20, 30], [10, 20, 30], seed=1) == (0.0, 0.0)
    low, high = paired_reduction_interval([5, 10, 15], [10, 20, 30], seed=1)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5), "halving every learner halves any resample"
    rng = np.random.default_rng(3)
    ours, theirs = rng.integers(20, 60, size=50), rng.integers(30, 90, size=50)
    point = 1 - ours.mean() / theirs.mean()
    low, high = paired_reduction_interval(ours.tolist(), theirs.tolist(), seed=1)
    assert low < point < high and high - low < 0.5
    assert (low, high) == paired_reduction_interval(ours.tolist(), theirs.tolist(), seed=1), "seeded"
    wide = paired_reduction_interval(ours[:10].tolist(), theirs[:10].tolist(), seed=1)
    assert wide[1] - wide[0] > high - low, "fewer learners, wider interval"
    assert all(np.isnan(paired_reduction_interval([], [], seed=1)))


def test_adaptive_paths_need_fewer_modules_than_the_syllabus_on_the_demo_world(tmp_path: Path) -> None:
    """The product's claim, on 30 demo learners (seed 2, cap 80): the adaptive service needs
    clearly fewer modules than the fixed syllabus (about 20 % here, the interval above 0), with no
    prerequisite violation. With BKT's learning step after every check item and a tutor step's
    learn rate (the service before 2026-12-02) it needed 4.6 %, its interval reaching below 0."""
    catalog = build_catalog(*catalog_parts_from_dict(json.loads(demo_catalog_path().read_text(encoding="utf-8"))))
    report = simulate(
        catalog, cohort_for(catalog, "demo", 30, seed=2), world_name="demo", seed=2, max_modules=80,
        policies=["adaptive", "syllabus"], workdir=tmp_path,
    ).to_json()  # fmt: skip
    assert report["adaptive_vs_syllabus_module_reduction"] >= 0.10
    assert report["adaptive_vs_syllabus_module_reduction_ci95"][0] > 0
    assert report["policies"]["adaptive"]["prerequisite_violations"] == 0
