"""BKT fitting recovers known parameters; the vectorized filter equals the online update."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from recommender.domain.assessment import ResultKind
from recommender.kt.bkt import DEFAULT_PARAMS, MODULE_SCORE_WEIGHT, SkillParams, apply_result
from recommender.kt.fit import ParamArrays, filter_predictions, filter_sequences, fit_bkt
from recommender.kt.sequences import Sequences, build_sequences
from tests.conftest import T0

TRUTH = {"prior": (0.3, 0.6), "learn": (0.15, 0.05), "guess": (0.2, 0.25), "slip": (0.1, 0.15)}


def simulate(n_learners: int, seed: int) -> tuple[np.ndarray, ...]:
    """Module assessments: each study teaches first, then its score is observed, the share right
    of MODULE_SCORE_WEIGHT items (the evidence a module score is read as)."""
    rng = np.random.default_rng(seed)
    learner, skill, score = [], [], []
    for i in range(n_learners):
        for k in range(2):
            known = rng.random() < TRUTH["prior"][k]
            for _ in range(int(rng.integers(4, 16))):
                known = known or rng.random() < TRUTH["learn"][k]
                p = 1 - TRUTH["slip"][k] if known else TRUTH["guess"][k]
                learner.append(i)
                skill.append(k)
                score.append(float((rng.random(int(MODULE_SCORE_WEIGHT)) < p).mean()))
    n = len(score)
    return np.array(learner), np.array(skill), np.array(score), np.zeros(n)


def test_em_recovers_parameters_of_simulated_data() -> None:
    seqs = build_sequences(*simulate(4000, seed=3))
    fitted = fit_bkt(seqs, 2, iterations=200, tolerance=1e-7)
    for name, truth in TRUTH.items():
        got = getattr(fitted, name)
        for k in range(2):
            assert got[k] == pytest.approx(truth[k], abs=0.05), f"{name}[{k}]"


def test_em_fits_item_results_with_emissions_of_their_own() -> None:
    """Module scores that barely tell mastered from not (guess 0.35, slip 0.35) and sharp items
    (0.1, 0.05) on the same skill: each kind gets its own pair, and the sharp one survives; so
    does each kind's learning rate (a module study teaches more than an item)."""
    rng = np.random.default_rng(5)
    learner, skill, score, item = [], [], [], []
    for i in range(3000):
        known = rng.random() < 0.3
        for _ in range(int(rng.integers(4, 16))):
            is_item = rng.random() < 0.5
            guess, slip = (0.1, 0.05) if is_item else (0.35, 0.35)
            learner.append(i)
            skill.append(0)
            item.append(is_item)
            if not is_item:  # a module study teaches, then is assessed
                known = known or rng.random() < 0.15
            items = 1 if is_item else int(MODULE_SCORE_WEIGHT)
            score.append(float((rng.random(items) < (1 - slip if known else guess)).mean()))
            if is_item:  # a practice item is answered, then its feedback teaches
                known = known or rng.random() < 0.04
    kind = np.where(np.array(item), int(ResultKind.PRACTICE), int(ResultKind.MODULE_ASSESSMENT))
    seqs = build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(len(score)), kind)
    fitted = fit_bkt(seqs, 1, iterations=200, tolerance=1e-7)
    assert fitted.guess[0] == pytest.approx(0.35, abs=0.05) and fitted.slip[0] == pytest.approx(0.35, abs=0.05)
    assert fitted.item_guess[0] == pytest.approx(0.1, abs=0.05) and fitted.item_slip[0] == pytest.approx(0.05, abs=0.05)
    assert fitted.learn[0] == pytest.approx(0.15, abs=0.04), "learning from a module study, before its score"
    assert fitted.item_learn[0] == pytest.approx(0.04, abs=0.03), "learning after a practice item, fitted on its own"
    model_only = fit_bkt(build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(len(score))), 1)
    default_pair = (DEFAULT_PARAMS.item_guess, DEFAULT_PARAMS.item_slip)
    assert (model_only.item_guess[0], model_only.item_slip[0]) == default_pair, "no item results: default item pair"


def test_degenerate_fits_can_be_reset_to_the_defaults() -> None:
    """Skill 0's scores ignore mastery (a coin), so its fit pins an emission at its bound; skill 1's
    follow it. Reset, skill 0 keeps every default and skill 1 its fit."""
    rng = np.random.default_rng(7)
    learner, skill, score = [], [], []
    for i in range(1500):
        known = rng.random() < 0.3
        for _ in range(int(rng.integers(4, 12))):
            for k in range(2):
                learner.append(i)
                skill.append(k)
                score.append(
                    float((rng.random(int(MODULE_SCORE_WEIGHT)) < (0.5 if k == 0 else (0.9 if known else 0.2))).mean())
                )
            known = known or rng.random() < 0.15
    seqs = build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(len(score)))
    kept = fit_bkt(seqs, 2)
    # the population's pair served, a little inside the bound the fit pinned
    assert max(kept.guess[0], kept.slip[0]) == pytest.approx(0.45, abs=0.01), "the coin skill pins an emission"
    reset = fit_bkt(seqs, 2, reset_degenerate=True)
    default = ParamArrays.constant(2)
    for name in (
        "prior",
        "learn",
        "guess",
        "slip",
        "forget",
        "item_guess",
        "item_slip",
        "studied_item_guess",
        "studied_item_slip",
    ):
        assert getattr(reset, name)[0] == getattr(default, name)[0], name
        assert getattr(reset, name)[1] == getattr(kept, name)[1], name
    assert reset.guess[1] != default.guess[1], "the informative skill keeps its fit"


def test_filter_matches_the_online_update_event_by_event() -> None:
    rng = np.random.default_rng(1)
    n = 40
    learner = np.zeros(n, dtype=np.int64)
    skill = rng.integers(0, 2, n)
    score = rng.random(n).round(2)
    days = np.cumsum(rng.exponential(2.0, n))
    kind = rng.choice([int(k) for k in (ResultKind.MODULE_ASSESSMENT, ResultKind.PRACTICE, ResultKind.CHECK)], n)
    item = kind != int(ResultKind.MODULE_ASSESSMENT)
    p = SkillParams(prior=0.2, learn=0.1, guess=0.15, slip=0.1, forget_per_day=0.03, floor=0.2, item_guess=0.3,
                    item_slip=0.25, item_learn=0.05, studied_item_guess=0.2, studied_item_slip=0.15)  # fmt: skip
    params = ParamArrays.constant(2, p)
    weight = rng.choice([1.0, 0.4], n)  # the skill's weight in the module: a main or a side skill
    seqs = build_sequences(learner, skill, score, days, kind, weight=weight)
    flat = filter_predictions(seqs, params)
    predicted = np.empty(n)
    predicted[seqs.row_of] = flat
    states: dict[int, object] = {}
    for i in range(n):
        at = T0 + timedelta(days=float(days[i]))
        state = states.get(int(skill[i]))
        if state is None:
            mastery = p.prior
        else:
            from recommender.kt.bkt import mastery_now

            mastery = mastery_now(state, p, at)  # type: ignore[arg-type]
        taught = state is not None and state.studied  # type: ignore[attr-defined]
        guess, slip = (p.item_guess, p.item_slip) if item[i] else (p.guess, p.slip)
        if item[i] and taught:  # an item on a skill a module taught: the studied pair
            guess, slip = p.studied_item_guess, p.studied_item_slip
        if not item[i]:  # a module assessment's score is predicted after its learning step
            mastery = mastery + (1 - mastery) * p.learn * weight[i]
        expected = mastery * (1 - slip) + (1 - mastery) * guess
        assert predicted[i] == pytest.approx(expected, abs=1e-9)
        states[int(skill[i])] = apply_result(state, str(skill[i]), float(score[i]), at, p,  # type: ignore[arg-type]
                                             kind=ResultKind(int(kind[i])), weight=float(weight[i]))  # fmt: skip
    final = filter_sequences(seqs, params)[1]
    for k, m in zip(seqs.skill.tolist(), final.tolist(), strict=True):
        assert m == pytest.approx(states[k].mastery, abs=1e-9), "the filter ends where the online update does"  # type: ignore[attr-defined]


def test_em_fits_each_modules_own_learning_effect() -> None:
    """Two modules teach the same skill, one far better than the other (0.6 against 0.1): the
    fit gives each its own rate, shrunk toward the skill's where it has few studies."""
    rng = np.random.default_rng(11)
    learner, skill, score, module = [], [], [], []
    effect = {0: 0.6, 1: 0.1}
    for i in range(3000):
        known = rng.random() < 0.2
        for _ in range(int(rng.integers(2, 6))):
            m = int(rng.integers(2))
            known = known or rng.random() < effect[m]
            learner.append(i)
            skill.append(0)
            module.append(m)
            score.append(float((rng.random(int(MODULE_SCORE_WEIGHT)) < (0.9 if known else 0.15)).mean()))
    n = len(score)
    kind = np.full(n, int(ResultKind.MODULE_ASSESSMENT))
    seqs = build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(n), kind, np.array(module))
    fitted = fit_bkt(seqs, 1, iterations=200, tolerance=1e-7)
    assert fitted.module_learn[(0, 0)] == pytest.approx(0.6, abs=0.08)
    assert fitted.module_learn[(1, 0)] == pytest.approx(0.1, abs=0.06)
    model = fitted.to_model(["s"], ["good", "poor"])
    assert model.learn_from("good", "s") > model.learn_from("poor", "s")


def test_a_skill_checked_but_never_practised_keeps_the_default_practice_rate() -> None:
    """Checks never learn, so however many there are they say nothing of a practice rate."""
    rng = np.random.default_rng(13)
    learner, skill, score, kind = [], [], [], []
    for i in range(200):
        known = rng.random() < 0.3
        for k in (ResultKind.CHECK, ResultKind.CHECK, ResultKind.MODULE_ASSESSMENT, ResultKind.CHECK):
            if k is ResultKind.MODULE_ASSESSMENT:
                known = known or rng.random() < 0.5
            learner.append(i)
            skill.append(0)
            kind.append(int(k))
            score.append(float(rng.random() < (0.9 if known else 0.2)))
    n = len(score)
    seqs = build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(n), np.array(kind))
    assert fit_bkt(seqs, 1).item_learn[0] == DEFAULT_PARAMS.item_learn


def _checked_over_time(
    forget: float, days: tuple[float, ...], learners: int, seed: int, *, study_after_first: bool = False
) -> tuple[np.ndarray, ...]:
    """Learners answering 5 check items (guess 0.1, slip 0.1) on one skill at each of `days`,
    forgetting as the model decays: between two moments a learner keeps their state with
    probability exp(-forget * gap), else it is drawn again from the prior (the floor), so
    P(mastered) decays toward the prior at `forget` per day. With `study_after_first`, the first
    check is followed by a module study (learn 0.9, then its score) at the next moment instead of
    checks: the history the simulator's past learners leave, a placement test then a module."""
    rng = np.random.default_rng(seed)
    prior = 0.4
    learner, score, day, kind = [], [], [], []
    for i in range(learners):
        known = rng.random() < prior
        for k, t in enumerate(days):
            if k and rng.random() > np.exp(-forget * (t - days[k - 1])):
                known = rng.random() < prior
            if study_after_first and k:
                known = known or rng.random() < 0.9
                rows = [(float((rng.random(int(MODULE_SCORE_WEIGHT)) < (0.9 if known else 0.2)).mean()),
                         ResultKind.MODULE_ASSESSMENT)]  # fmt: skip
            else:
                rows = [(float(rng.random() < (0.9 if known else 0.1)), ResultKind.CHECK) for _ in range(5)]
            for s, result_kind in rows:
                learner.append(i)
                score.append(s)
                day.append(t)
                kind.append(int(result_kind))
    n = len(score)
    return np.array(learner), np.zeros(n, dtype=np.int64), np.array(score), np.array(day), np.array(kind)


def test_forgetting_is_fitted_where_the_history_identifies_it() -> None:
    """Checks on both sides of long gaps show forgetting: the fit finds the rate the data were
    generated with, faster or slower than the default."""
    for truth in (0.02, 0.0):
        seqs = build_sequences(*_checked_over_time(truth, (0.0, 40.0, 80.0), 4000, seed=17))
        assert fit_bkt(seqs, 1).forget[0] == pytest.approx(truth, abs=0.004), truth


def test_forgetting_the_history_cannot_identify_keeps_the_default() -> None:
    """A placement check, then a module most learners learn from: whatever was forgotten in
    between is learnt again, so no rate explains the history better than another and the default
    stays (the grid's best would be a draw of noise or, on a tie, no forgetting at all)."""
    seqs = build_sequences(*_checked_over_time(0.0, (0.0, 10.0), 3000, seed=19, study_after_first=True))
    fitted = fit_bkt(seqs, 1)
    assert fitted.forget[0] == DEFAULT_PARAMS.forget_per_day


def test_a_skill_the_history_barely_shows_is_served_as_an_untrained_service_serves_it() -> None:
    """Skill 0 has thousands of results, skill 2 a handful: skill 2 keeps every default, the
    floor its mastery decays toward included, and skill 0 forgets back to its fitted prior."""
    learner, skill, score, days = simulate(400, seed=5)
    few = np.flatnonzero(skill == 1)[:5]
    keep = (skill == 0) | np.isin(np.arange(len(skill)), few)
    skill = np.where(skill == 1, 2, skill)
    seqs = build_sequences(learner[keep], skill[keep], score[keep], days[keep])
    model = fit_bkt(seqs, 3).to_model(["a", "b", "c"])
    assert model.of("c") == DEFAULT_PARAMS
    assert model.of("a").floor == model.of("a").prior != DEFAULT_PARAMS.prior


def test_em_fits_items_after_a_study_apart_from_placement_items() -> None:
    """Placement items, before any study, answered by learners who know the skill or not at all
    (guess 0.02, slip 0.1), and checks after a study, answered by learners part of the way (guess
    0.3, slip 0.15): each pair is fitted from its own results. A history with no check after a
    study keeps the default studied pair, never the placement pair."""
    rng = np.random.default_rng(11)
    learner, score, kind = [], [], []
    for i in range(4000):
        known = rng.random() < 0.3
        for _ in range(3):  # placement
            learner.append(i)
            kind.append(int(ResultKind.CHECK))
            score.append(float(rng.random() < (0.9 if known else 0.02)))
        known = known or rng.random() < 0.5  # one module's study, then its assessment
        learner.append(i)
        kind.append(int(ResultKind.MODULE_ASSESSMENT))
        score.append(float((rng.random(2) < (0.8 if known else 0.3)).mean()))
        for _ in range(3):  # checks after the study
            learner.append(i)
            kind.append(int(ResultKind.CHECK))
            score.append(float(rng.random() < (0.85 if known else 0.3)))
    learners, scores, kinds = np.array(learner), np.array(score), np.array(kind)
    n = len(scores)
    skills, days = np.zeros(n, dtype=np.int64), np.zeros(n)
    fitted = fit_bkt(build_sequences(learners, skills, scores, days, kinds), 1, iterations=200, tolerance=1e-7)
    assert fitted.item_guess[0] == pytest.approx(0.02, abs=0.02) and fitted.item_slip[0] == pytest.approx(0.1, abs=0.04)
    assert fitted.studied_item_guess[0] == pytest.approx(0.3, abs=0.06)
    assert fitted.studied_item_slip[0] == pytest.approx(0.15, abs=0.06)
    keep = (np.arange(n) % 7) < 4  # placement and the module assessment, no check after it
    without_checks = fit_bkt(
        build_sequences(learners[keep], skills[keep], scores[keep], days[keep], kinds[keep]), 1, iterations=200
    )
    assert without_checks.item_guess[0] == pytest.approx(0.02, abs=0.02)
    assert (without_checks.studied_item_guess[0], without_checks.studied_item_slip[0]) == (
        DEFAULT_PARAMS.studied_item_guess,
        DEFAULT_PARAMS.studied_item_slip,
    )


class _OneSkill:
    """One skill's results, learner by learner, in the order they are added."""

    def __init__(self) -> None:
        self.learner: list[int] = []
        self.kind: list[int] = []
        self.score: list[float] = []

    def checks(self, i: int, right: float, rng: np.random.Generator) -> None:
        """Three check items of learner `i`, each right with probability `right`."""
        for _ in range(3):
            self._add(i, ResultKind.CHECK, float(rng.random() < right))

    def study(self, i: int, score: float) -> None:
        self._add(i, ResultKind.MODULE_ASSESSMENT, score)

    def _add(self, i: int, kind: ResultKind, score: float) -> None:
        self.learner.append(i)
        self.kind.append(int(kind))
        self.score.append(score)

    def sequences(self) -> Sequences:
        n = len(self.score)
        return build_sequences(
            np.array(self.learner), np.zeros(n, dtype=np.int64), np.array(self.score), np.zeros(n), np.array(self.kind)
        )


def test_a_pinned_studied_pair_alone_goes_back_to_the_defaults() -> None:
    """Checks after a study answered at random pin the studied pair at a bound: with the reset,
    that pair takes the defaults and the rest of the skill's fit (placement items, module scores,
    prior, learning) stands."""
    rng = np.random.default_rng(13)
    results = _OneSkill()
    for i in range(4000):
        known = rng.random() < 0.3
        results.checks(i, 0.9 if known else 0.05, rng)
        known = known or rng.random() < 0.5
        results.study(i, float((rng.random(2) < (0.85 if known else 0.2)).mean()))
        results.checks(i, 0.5, rng)  # a coin, whatever the learner knows
    seqs = results.sequences()
    kept = fit_bkt(seqs, 1, reset_degenerate=False)
    reset = fit_bkt(seqs, 1, reset_degenerate=True)
    assert max(kept.studied_item_guess[0], kept.studied_item_slip[0]) >= 0.45, "the coin pins the studied pair"
    assert (reset.studied_item_guess[0], reset.studied_item_slip[0]) == (
        DEFAULT_PARAMS.studied_item_guess,
        DEFAULT_PARAMS.studied_item_slip,
    )
    for name in ("prior", "learn", "guess", "slip", "item_guess", "item_slip"):
        assert getattr(reset, name)[0] == getattr(kept, name)[0], name


def test_em_beside_the_learners_ability_recovers_the_learning_it_would_hide() -> None:
    """Module scores that a learner's general ability moves (a logit shift, the same on every
    skill): fitted beside the abilities, the learning rate and the prior are recovered, and the
    module pair served is the population's; fitted without them, the persistent ability reads
    as a skill known from the start and learning is underestimated."""
    truth = {"prior": 0.2, "learn": 0.4, "guess": 0.25, "slip": 0.15}
    spread = 1.5

    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    rng = np.random.default_rng(5)
    learner, skill, score = [], [], []
    for i in range(2000):
        ability = rng.normal(0.0, spread)
        for k in range(3):
            known = rng.random() < truth["prior"]
            for _ in range(int(rng.integers(2, 5))):
                known = known or rng.random() < truth["learn"]
                shifted = (logit(1 - truth["slip"]) if known else logit(truth["guess"])) + ability
                learner.append(i)
                skill.append(k)
                score.append(float((rng.random(int(MODULE_SCORE_WEIGHT)) < 1 / (1 + np.exp(-shifted))).mean()))
    seqs = build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(len(score)))
    fitted = fit_bkt(seqs, 3, iterations=200, tolerance=1e-6)
    without = fit_bkt(seqs, 3, iterations=200, tolerance=1e-6, learner_ability=False)
    abilities = rng.normal(0.0, spread, 200_000)
    population_guess = float(np.mean(1 / (1 + np.exp(-(logit(truth["guess"]) + abilities)))))
    population_slip = 1 - float(np.mean(1 / (1 + np.exp(-(logit(1 - truth["slip"]) + abilities)))))
    for k in range(3):
        assert fitted.learn[k] == pytest.approx(truth["learn"], abs=0.08)
        assert fitted.prior[k] == pytest.approx(truth["prior"], abs=0.06)
        assert fitted.guess[k] == pytest.approx(population_guess, abs=0.05)
        assert fitted.slip[k] == pytest.approx(population_slip, abs=0.05)
        assert without.learn[k] < truth["learn"] - 0.1
        assert without.prior[k] > truth["prior"] + 0.08


def test_module_scores_that_do_not_discriminate_are_set_aside_and_the_items_still_fit_the_skill() -> None:
    """Module scores that are a coin pin the module pair; with the reset, the skill is fitted
    again reading them as no evidence: its placement items fit the prior and their emissions,
    the module pair and the learning rate (no item after a study shows it) keep the defaults."""
    rng = np.random.default_rng(17)
    results = _OneSkill()
    for i in range(3000):
        known = rng.random() < 0.6
        results.checks(i, 0.9 if known else 0.05, rng)
        for _ in range(2):
            results.study(i, float((rng.random(int(MODULE_SCORE_WEIGHT)) < 0.5).mean()))
    seqs = results.sequences()
    kept = fit_bkt(seqs, 1)
    assert max(kept.guess[0], kept.slip[0]) >= 0.45, "the coin pins the module pair"
    reset = fit_bkt(seqs, 1, reset_degenerate=True)
    assert reset.prior[0] == pytest.approx(0.6, abs=0.04)
    assert reset.item_guess[0] == pytest.approx(0.05, abs=0.02)
    assert reset.item_slip[0] == pytest.approx(0.1, abs=0.03)
    for name in ("guess", "slip", "learn"):
        assert getattr(reset, name)[0] == getattr(DEFAULT_PARAMS, name), name


def test_a_fit_of_a_cohort_above_average_ability_is_judged_at_its_own_mean() -> None:
    """Learners of ability one logit above the grid's centre: the module pair the fit judges is a
    learner's at the cohort's mean (here guess 0.32, slip 0.06), not the population's, which
    the spread of abilities pulls toward a half; so it is kept, and the learning the scores show
    is recovered."""
    rng = np.random.default_rng(23)
    learner, skill, score = [], [], []
    for i in range(1500):
        ability = rng.normal(1.0, 1.0)
        for k in range(2):
            known = rng.random() < 0.2
            for _ in range(int(rng.integers(2, 5))):
                known = known or rng.random() < 0.4
                shifted = (np.log(0.85 / 0.15) if known else np.log(0.15 / 0.85)) + ability
                learner.append(i)
                skill.append(k)
                score.append(float((rng.random(int(MODULE_SCORE_WEIGHT)) < 1 / (1 + np.exp(-shifted))).mean()))
    seqs = build_sequences(np.array(learner), np.array(skill), np.array(score), np.zeros(len(score)))
    fitted = fit_bkt(seqs, 2, iterations=200, tolerance=1e-6, reset_degenerate=True)
    for k in range(2):
        assert fitted.learn[k] == pytest.approx(0.4, abs=0.1), "fitted, not reset to the default 0.8"
        assert fitted.prior[k] == pytest.approx(0.2, abs=0.08)


def test_a_learning_rate_at_its_floor_is_a_degenerate_fit() -> None:
    """Module scores of a state that never changes (each learner knows the skill or not, for
    good): the fit puts learning at its floor, and with the reset the skill keeps the defaults."""
    rng = np.random.default_rng(29)
    learner, score = [], []
    for i in range(2000):
        known = rng.random() < 0.5
        for _ in range(int(rng.integers(3, 7))):
            learner.append(i)
            score.append(float((rng.random(int(MODULE_SCORE_WEIGHT)) < (0.9 if known else 0.2)).mean()))
    n = len(score)
    seqs = build_sequences(np.array(learner), np.zeros(n, dtype=np.int64), np.array(score), np.zeros(n))
    kept = fit_bkt(seqs, 1, learner_ability=False)
    assert kept.learn[0] <= 0.01
    reset = fit_bkt(seqs, 1, learner_ability=False, reset_degenerate=True)
    assert (reset.learn[0], reset.prior[0]) == (DEFAULT_PARAMS.learn, DEFAULT_PARAMS.prior)


def _set_aside_with_checks_after(learn: float, seed: int) -> ParamArrays:
    """The fit, with the reset, of learners who take three placement checks, study the skill's
    module (a score that is a coin), then take three checks again; half know the skill at the
    start, the others learn it from the study with probability `learn`."""
    rng = np.random.default_rng(seed)
    results = _OneSkill()
    for i in range(3000):
        known = rng.random() < 0.5
        results.checks(i, 0.9 if known else 0.05, rng)
        known = known or rng.random() < learn
        results.study(i, float((rng.random(int(MODULE_SCORE_WEIGHT)) < 0.5).mean()))
        results.checks(i, 0.9 if known else 0.05, rng)
    seqs = results.sequences()
    return fit_bkt(seqs, 1, reset_degenerate=True)


def test_a_set_aside_skill_learns_at_the_rate_its_checks_after_a_study_show() -> None:
    """Module scores that are a coin are set aside; the checks after the study still show what
    it taught, and the refit recovers that rate beside the prior."""
    reset = _set_aside_with_checks_after(0.4, 31)
    assert reset.prior[0] == pytest.approx(0.5, abs=0.05)
    assert reset.learn[0] == pytest.approx(0.4, abs=0.06)
    assert (reset.guess[0], reset.slip[0]) == (DEFAULT_PARAMS.guess, DEFAULT_PARAMS.slip), "the coin stays aside"


def test_a_refit_learning_rate_at_its_floor_keeps_the_default() -> None:
    """The checks after the study show no learning at all, so the refit's learning rate lands on
    its floor, which says no more than module scores pinned there would: the default serves."""
    reset = _set_aside_with_checks_after(0.0, 37)
    assert reset.prior[0] == pytest.approx(0.5, abs=0.05), "the placement items still fit the prior"
    assert reset.learn[0] == DEFAULT_PARAMS.learn


def test_a_few_studies_do_not_fit_a_learning_rate_however_many_checks_follow_them() -> None:
    """Twelve studies, each before and after three checks, beside many learners checked only:
    the checks after the studies reach the count an item pair needs, the studies do not, so the
    learning rate keeps the default rather than one fitted from a dozen studies."""
    rng = np.random.default_rng(41)
    results = _OneSkill()
    for i in range(400):
        right = 0.9 if rng.random() < 0.5 else 0.05
        results.checks(i, right, rng)
        if i < 12:
            results.study(i, 0.5)
            results.checks(i, right, rng)
    seqs = results.sequences()
    for reset in (False, True):
        assert fit_bkt(seqs, 1, reset_degenerate=reset).learn[0] == DEFAULT_PARAMS.learn, reset
