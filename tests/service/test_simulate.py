"""The learning-efficiency simulator on a tiny world, end to end through the service code."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recommender.cli import main
from recommender.domain.catalog import build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.service.app import build_app
from recommender.service.clock import ManualClock
from recommender.service.demo import demo_catalog_path
from recommender.service.simulate import (
    FAMILY_PROTOCOL,
    NO_ROUTE,
    _skill_check,
    chinese_route_cohort,
    cohort_for,
    paired_ratio_interval,
    paired_reduction_interval,
    simulate,
)
from recommender.simulation.families import build_world, sample_family_learners, select_families
from recommender.simulation.truth import HiddenLearner, HiddenWorld, can_take, world_syllabus
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0, make_settings, tiny_catalog


def test_policies_run_on_the_same_learners_and_respect_prerequisites(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 6, seed=3)
    report = simulate(catalog, cohort, world_name="tiny", seed=3, max_modules=25, workdir=tmp_path)
    doc = report.to_json()
    assert set(doc["policies"]) == {"adaptive", "oracle", "syllabus"}
    for name, summary in doc["policies"].items():
        assert summary["learners"] == 6, name
        assert 0 <= summary["reached_share"] <= 1
        assert len(doc["curves"][name]) == 26
    assert doc["policies"]["adaptive"]["prerequisite_violations"] == 0
    checks = {name: summary["checks_mean"] for name, summary in doc["policies"].items()}
    assert checks["adaptive"] > 0, "the adaptive learners answer checks (skill or readiness) with item results"
    assert checks["oracle"] == checks["syllabus"] == 0, "they never check"
    assert doc["policies"]["syllabus"]["prerequisite_violations"] == 0, "the syllabus follows prerequisite order"
    for name in ("adaptive", "oracle"):
        curve = doc["curves"][name]
        assert curve[-1] >= curve[0], f"{name} learners end at least as ready as they started"
    oracle = doc["policies"]["oracle"]
    assert oracle["reached_share"] >= doc["policies"]["adaptive"]["reached_share"], "true mastery plans no worse"
    assert oracle["tracking_error"] == oracle["tracking_bias"] == 0.0, "the oracle plans on the truth itself"
    adaptive = doc["policies"]["adaptive"]
    assert 0.0 < adaptive["tracking_error"] <= 1.0 and abs(adaptive["tracking_bias"]) <= adaptive["tracking_error"]
    assert doc["policies"]["syllabus"]["tracking_error"] is None, "a fixed order plans on no estimate"
    for name in ("adaptive", "oracle"):
        assert doc[f"{name}_vs_syllabus_module_reduction"] == pytest.approx(
            1 - doc["policies"][name]["modules_mean"] / doc["policies"]["syllabus"]["modules_mean"]
        )
    assert "syllabus_vs_syllabus_module_reduction" not in doc, "the baseline is not compared with itself"
    assert "oracle, the planner fed true mastery:" in report.table()
    again = simulate(catalog, cohort, world_name="tiny", seed=3, max_modules=25, workdir=tmp_path).to_json()
    assert again == doc, "seeded: the same report twice"


def test_a_learner_no_policy_can_teach_stops_short_and_counts_at_the_cap(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    taught = {lang for m in catalog.modules.values() for lang in m.languages}
    assert "sw" not in taught
    who = cohort_for(catalog, "demo", 1, seed=3)[0]
    stranded = replace(who, learner=replace(who.learner, languages=("sw",), chinese_level=0))
    doc = simulate(catalog, [stranded], world_name="tiny", seed=3, max_modules=12, workdir=tmp_path).to_json()
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
        main(["simulate", "--learners", "2", "--max-modules", "4", "--policies", "oracle", "--json", str(chosen)]) == 0
    )
    printed = capsys.readouterr().out
    assert set(json.loads(chosen.read_text())["policies"]) == {"oracle", "syllabus"}, "the baseline always runs"
    assert "oracle, the planner fed" in printed and "adaptive" not in printed
    assert main(["simulate", "--policies", "adaptive,bogus"]) == 2
    for lab_only in ("bayes", "popularity"):
        assert main(["simulate", "--policies", lab_only]) == 2, "the lab's policies are `python -m lab simulate`"
    for lab_flag in ("--oracle-noise", "--oracle-margin"):
        with pytest.raises(SystemExit):
            main(["simulate", lab_flag, "0.1"])


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


def test_adaptive_paths_need_far_fewer_modules_than_the_syllabus_on_a_tuning_family(tmp_path: Path) -> None:
    """The product's claim (issue #20), on a tuning family with informative scores: 12 learners,
    the protocol of the family table (placement test, syllabus retakes). The adaptive service needs
    at most 0.6x the syllabus's modules, the interval above 0, and breaks no prerequisite."""
    world, cohort = _family_world("broad-medium", 12, seed=5)
    doc = simulate(
        world.catalog, cohort, world_name="broad-medium", seed=5, max_modules=80,
        policies=("adaptive", "syllabus"), workdir=tmp_path, world=world, protocol=FAMILY_PROTOCOL,
    ).to_json()  # fmt: skip
    adaptive, syllabus = doc["policies"]["adaptive"], doc["policies"]["syllabus"]
    assert adaptive["modules_mean"] <= 0.6 * syllabus["modules_mean"]
    assert doc["adaptive_vs_syllabus_module_reduction_ci95"][0] > 0
    assert adaptive["prerequisite_violations"] == 0


def _family_world(name: str, learners: int, seed: int) -> tuple[HiddenWorld, list[HiddenLearner]]:
    family = select_families(name)[0]
    world = build_world(family, np.random.default_rng([seed, 1]))
    return world, sample_family_learners(family, world, learners, np.random.default_rng([seed, 2]))


def test_the_syllabus_keeps_prerequisite_order_and_retakes_a_module_at_most_three_times(tmp_path: Path) -> None:
    world, cohort = _family_world("deep-weak", 4, seed=3)
    catalog = world.catalog
    report = simulate(
        catalog, cohort, world_name="deep-weak", seed=3, max_modules=60, policies=("syllabus",), workdir=tmp_path,
        world=world, protocol=FAMILY_PROTOCOL,
    )  # fmt: skip
    result = report.results["syllabus"]
    runs: list[int] = []
    for who, trace in zip(cohort, result.traces, strict=True):
        syllabus = world_syllabus(world, who.learner.target_role_id, who.learner)
        first_pass = list(dict.fromkeys(trace))
        assert first_pass == syllabus[: len(first_pass)], "in the syllabus's prerequisite order"
        for k, module_id in enumerate(first_pass):
            assert set(catalog.modules[module_id].prerequisite_module_ids) <= set(first_pass[:k])
        run = 1
        for before, after in itertools.pairwise(trace):
            run = run + 1 if after == before else 1
            runs.append(run)
    assert max(runs) == FAMILY_PROTOCOL.syllabus_attempts, "weak scores: some module is retaken, never a 4th time"
    assert result.violations == 0 and result.placement_items == [0] * 4, "no placement: it reads no results"
    once = simulate(
        catalog, cohort, world_name="deep-weak", seed=3, max_modules=60, policies=("syllabus",), workdir=tmp_path,
        world=world, protocol=replace(FAMILY_PROTOCOL, syllabus_attempts=1),
    ).results["syllabus"]  # fmt: skip
    assert all(a != b for trace in once.traces for a, b in itertools.pairwise(trace)), "one attempt: never retaken"


def test_the_placement_test_reports_three_items_per_role_skill_and_counts_no_module(tmp_path: Path) -> None:
    world, cohort = _family_world("wide-strong", 2, seed=4)
    catalog = world.catalog
    ready = replace(cohort[0], initial_mastery=np.ones(len(catalog.skill_ids)))
    report = simulate(
        catalog, [ready, cohort[1]], world_name="wide-strong", seed=4, max_modules=40,
        policies=("adaptive", "syllabus", "oracle"), workdir=tmp_path, world=world, protocol=FAMILY_PROTOCOL,
    )  # fmt: skip
    adaptive = report.results["adaptive"]
    for who, placed in zip((ready, cohort[1]), adaptive.placement_items, strict=True):
        assert placed == 3 * len(catalog.roles[who.learner.target_role_id].requirements)
    assert adaptive.modules[0] == 0 and adaptive.traces[0] == [], "truly ready: the placement test is no module"
    assert report.results["oracle"].placement_items == report.results["syllabus"].placement_items == [0, 0]
    assert adaptive.traces[1] and adaptive.traces[1][0] != "", "the first step after the placement is a module"

    # what the service sees: item results (evidence), no module studied
    app = build_app(make_settings(f"sqlite:///{tmp_path / 'p.db'}", tmp_path))
    try:
        app.catalogs.upsert(catalog.skills.values(), catalog.modules.values(), catalog.roles.values(), replace=True)
        who = cohort[1]
        app.learners.upsert_many(DEFAULT_TENANT, [who.learner])
        skills = tuple(r.skill_id for r in catalog.roles[who.learner.target_role_id].requirements)
        clock = ManualClock(T0)
        answers = _skill_check(
            app, clock, world, who, who.initial_mastery, 0, np.random.default_rng(1), skills, items=3, label="placement"
        )
        events = app.store.events_of(DEFAULT_TENANT, who.learner.learner_id)
        record = app.store.get_learner_record(DEFAULT_TENANT, who.learner.learner_id)
    finally:
        app.close()
    assert len(answers) == len(skills) and len(events) == 3 * len(skills)
    assert all(e.item_id.startswith("placement-") and len(e.skill_ids) == 1 for e in events)
    assert record is not None and not record.studied_module_ids, "item results are evidence, not study"


def test_the_oracle_needs_fewer_modules_than_the_syllabus_on_a_family(tmp_path: Path) -> None:
    world, cohort = _family_world("broad-medium", 8, seed=5)
    doc = simulate(
        world.catalog, cohort, world_name="broad-medium", seed=5, max_modules=80, policies=("oracle", "syllabus"),
        workdir=tmp_path, world=world, protocol=FAMILY_PROTOCOL,
    ).to_json()  # fmt: skip
    oracle, syllabus = doc["policies"]["oracle"], doc["policies"]["syllabus"]
    assert oracle["modules_mean"] < 0.8 * syllabus["modules_mean"]
    assert doc["oracle_vs_syllabus_module_reduction_ci95"][0] > 0
    assert oracle["reached_share"] >= syllabus["reached_share"]


def test_paired_ratio_interval_is_the_reduction_interval_as_a_ratio() -> None:
    rng = np.random.default_rng(3)
    ours, theirs = rng.integers(20, 60, size=30).tolist(), rng.integers(30, 90, size=30).tolist()
    low, high = paired_reduction_interval(ours, theirs, seed=2)
    assert paired_ratio_interval(ours, theirs, seed=2) == pytest.approx((1 - high, 1 - low))
    assert paired_ratio_interval([5, 10], [10, 20], seed=1) == pytest.approx((0.5, 0.5))


def test_simulate_families_prints_one_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "families.json"
    assert (
        main(["simulate", "--family", "wide-strong", "--learners", "2", "--max-modules", "8", "--json", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "wide-strong" in printed and "held-out" in printed and "worst held-out family: wide-strong" in printed
    doc = json.loads(out.read_text())
    (row,) = doc["families"]
    assert row["family"] == "wide-strong" and row["split"] == "held_out"
    assert set(row["modules"]) == {"adaptive", "syllabus", "oracle"}
    assert row["adaptive_vs_syllabus_ratio"] == pytest.approx(row["modules"]["adaptive"] / row["modules"]["syllabus"])
    assert doc["summary"]["held_out_worst"]["family"] == "wide-strong"
    assert doc["protocol"] == {"placement_items": 3, "syllabus_attempts": 3, "pass_mark": 0.6}
    assert doc["worlds_per_family"] == 2 and row["report"]["learners"] == 2, "one learner in each of two worlds"
    assert len(row["report"]["curves"]["adaptive"]) == 9

    assert main(["simulate", "--families", "tuning", "--learners", "1", "--max-modules", "3"]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if " tuning " in line]
    assert len(rows) == 3 and "held-out families" not in printed, "no held-out family, no held-out summary"

    trained = tmp_path / "trained.json"
    args = ["simulate", "--family", "deep-medium", "--learners", "2", "--max-modules", "6", "--history", "30"]
    assert main([*args, "--json", str(trained)]) == 0
    assert "trained service needs fewer modules than the untrained one on" in capsys.readouterr().out
    (row,) = json.loads(trained.read_text())["families"]
    assert row["trained_model_version"] and "trained_vs_syllabus_ratio_ci95" in row

    assert main(["simulate", "--family", "bogus"]) == 2
    assert main(["simulate", "--family", "deep-weak", "--worlds", "0"]) == 2
    assert main(["simulate", "--families", "all", "--policies", "adaptive"]) == 2
    with pytest.raises(SystemExit):
        main(["simulate", "--family", "deep-weak", "--families", "all"])


def test_the_chinese_route_reaches_the_role_where_chinese_as_a_filter_cannot(tmp_path: Path) -> None:
    """Issue #24, on demo-world learners whose role needs modules taught only in Chinese above their
    HSK level: the adaptive policy climbs the Chinese ladder (the simulated learner's level rises
    as they pass it) and reaches the role; with Chinese only a filter no learner can."""
    catalog = build_catalog(*catalog_parts_from_dict(json.loads(demo_catalog_path().read_text(encoding="utf-8"))))
    cohort = chinese_route_cohort(catalog, 3, seed=1)
    assert len(cohort) == 3
    report = simulate(catalog, cohort, world_name="demo", seed=1, max_modules=50, policies=("adaptive", NO_ROUTE),
                      workdir=tmp_path)  # fmt: skip
    adaptive, blind = report.results["adaptive"], report.results[NO_ROUTE]
    assert not any(blind.reached), "what the role needs is taught only in Chinese they never get to"
    assert sum(adaptive.reached) >= 2
    ladder = {m for m in catalog.module_ids if catalog.modules[m].raises_chinese_level}
    for trace, reached in zip(adaptive.traces, adaptive.reached, strict=True):
        if reached:
            assert ladder & set(trace), "the role was reached through the Chinese ladder"
    for who, trace in zip(cohort, blind.traces, strict=True):
        assert all(not m or can_take(catalog.modules[m], who.learner) for m in trace), "blind: the declared level"
