"""The lab's policies (bayes, the noisy oracle, popularity) through the product simulator's loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.cli import fixed_params
from lab.cli import main as lab_main
from lab.policies import LAB_POLICIES, NoisyOracle, historical_popularity, lab_policies, raised_levels
from recommender.domain.catalog import build_catalog
from recommender.kt.bkt import DEFAULT_PARAMS
from recommender.service.simulate import cohort_for, simulate
from tests.conftest import tiny_catalog


def test_bayes_and_popularity_run_beside_the_product_policies_on_the_same_draws(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 6, seed=3)
    policies = lab_policies(LAB_POLICIES, popularity=historical_popularity(catalog, 3, learners=30))
    report = simulate(catalog, cohort, world_name="tiny", seed=3, max_modules=25, policies=policies, workdir=tmp_path)
    doc = report.to_json()
    assert list(doc["policies"]) == list(LAB_POLICIES)
    product = simulate(catalog, cohort, world_name="tiny", seed=3, max_modules=25, workdir=tmp_path).to_json()
    for name in ("adaptive", "oracle", "syllabus"):
        assert doc["policies"][name] == product["policies"][name], f"{name}: the lab's policies draw apart"
    adaptive, bayes = doc["policies"]["adaptive"], doc["policies"]["bayes"]
    assert 0.0 < bayes["tracking_error"] < adaptive["tracking_error"], "the best tracing of the same observations"
    assert bayes["prerequisite_violations"] == 0
    popularity = doc["policies"]["popularity"]
    assert popularity["tracking_error"] is None and popularity["checks_mean"] == 0, "a fixed order, no checks"
    assert doc["bayes_vs_syllabus_module_reduction"] == pytest.approx(
        1 - bayes["modules_mean"] / doc["policies"]["syllabus"]["modules_mean"]
    )
    assert "popularity_vs_syllabus_module_reduction" not in doc, "a baseline shown, not compared"
    assert "bayes, the planner fed the best tracing" in report.table()


def test_a_noisy_oracle_plans_on_noisy_truth_and_leaves_the_other_policies_alone(tmp_path: Path) -> None:
    catalog = build_catalog(*tiny_catalog())
    cohort = cohort_for(catalog, "demo", 6, seed=3)

    def run(noise: float, margin: float) -> dict[str, Any]:
        policies = lab_policies(("adaptive", "oracle", "syllabus"), oracle_noise=noise, oracle_margin=margin)
        return simulate(
            catalog, cohort, world_name="tiny", seed=3, max_modules=25, policies=policies, workdir=tmp_path,
        ).to_json()  # fmt: skip

    exact, noisy = run(0.0, 0.25), run(0.3, 0.25)
    assert noisy == run(0.3, 0.25), "seeded: the noise is drawn the same way twice"
    assert noisy["curves"]["oracle"] != exact["curves"]["oracle"], "the oracle sees (and plans on) the noise"
    for name in ("adaptive", "syllabus"):
        assert noisy["policies"][name] == exact["policies"][name], f"{name} draws nothing from the oracle's noise"
    # what the oracle plans on is off the truth by the noise: E|N(0, 0.3)| = 0.24, less where clipped to [0, 1]
    assert 0.1 < noisy["policies"]["oracle"]["tracking_error"] < 0.24
    with pytest.raises(ValueError, match="oracle_noise"):
        NoisyOracle(-0.1, 0.0)
    with pytest.raises(ValueError, match="oracle_margin"):
        NoisyOracle(0.0, 1.0)


def test_a_margin_raises_every_role_level_toward_one() -> None:
    catalog = build_catalog(*tiny_catalog())
    raised = raised_levels(catalog, 0.5)
    for role_id, role in catalog.roles.items():
        levels = [r.level for r in raised.roles[role_id].requirements]
        assert levels == pytest.approx([r.level + 0.5 * (1 - r.level) for r in role.requirements])
    assert raised.modules == catalog.modules and raised.skills == catalog.skills
    assert [r.level for r in raised_levels(catalog, 0.0).roles["welder"].requirements] == [
        r.level for r in catalog.roles["welder"].requirements
    ]
    with pytest.raises(ValueError, match="margin"):
        raised_levels(catalog, 1.0)


def test_the_lab_command_writes_its_settings_and_refuses_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lab.json"
    args = ["simulate", "--learners", "2", "--max-modules", "4", "--policies", "bayes,oracle"]
    assert lab_main([*args, "--oracle-noise", "0.1", "--oracle-margin", "0.2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "margin 0.2" in printed and "bayes, the planner fed" in printed
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {"bayes", "oracle", "syllabus"}, "the baseline always runs"
    assert (doc["oracle_noise"], doc["oracle_margin"]) == (0.1, 0.2) and doc["world"] == "demo"
    assert lab_main(["simulate", "--policies", "adaptive,bogus"]) == 2
    assert lab_main(["simulate", "--oracle-noise", "-0.1"]) == 2
    assert lab_main(["simulate", "--oracle-margin", "1"]) == 2
    assert lab_main(["simulate", "--world", "junyi"]) == 2


def test_fixed_kt_reads_its_parameters_over_the_defaults_and_refuses_what_is_not_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    params = fixed_params("prior=0.01, learn=0.14")
    assert (params.prior, params.learn, params.guess) == (0.01, 0.14, DEFAULT_PARAMS.guess)
    assert params.floor == 0.01, "a fitted skill forgets back to its prior"
    assert fixed_params("prior=0.01,floor=0.05").floor == 0.05
    refused = [
        ("lern=0.1", "NAME=VALUE"), ("learn", "NAME=VALUE"), ("learn=x", "not a number"),
        ("learn=1.5", "learn must be in"), ("guess=0.6,slip=0.5", "guess \\+ slip"),
        ("forget_per_day=inf", "finite"), ("learn=0.1,learn=0.2", "twice"), (" , ", "no parameter"),
    ]  # fmt: skip
    for bad, why in refused:
        with pytest.raises(ValueError, match=why):
            fixed_params(bad)
    assert lab_main(["fixed-kt", "--params", "learn=2", "--families", "deep-weak"]) == 2
    assert "learn must be in [0, 1]" in capsys.readouterr().err
    assert lab_main(["fixed-kt", "--params", "learn=0.5", "--families", "nowhere"]) == 2


def test_fixed_kt_trains_the_families_service_with_the_parameters_given(tmp_path: Path) -> None:
    out = tmp_path / "fixed.json"
    args = ["fixed-kt", "--params", "prior=0.02,learn=0.3", "--families", "deep-medium", "--learners", "2"]
    assert lab_main([*args, "--max-modules", "6", "--history", "30", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["families"]
    training = row["trained_report"]["training"]
    assert training["fit_bkt"] is False and row["trained_model_version"]
    assert (training["unfitted_bkt"]["prior"], training["unfitted_bkt"]["learn"]) == (0.02, 0.3)
    assert row["trained_report"]["reset_degenerate_bkt"] is False, "nothing fitted, nothing reset"
