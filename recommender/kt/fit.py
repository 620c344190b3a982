"""Fitting BKT per skill: Baum-Welch EM over every (learner, skill) sequence at once, then the
forgetting rate per skill by likelihood over a grid (it is only identifiable with real time gaps).

Also `filter_predictions`: the online BKT update run over whole sequences, predicting each
response before updating on it; the same arithmetic as kt/bkt.apply_result (tested to agree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from recommender.kt.bkt import DEFAULT_PARAMS, BKTModel, SkillParams
from recommender.kt.sequences import Sequences

FloatArray = npt.NDArray[np.float64]
FORGET_GRID = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
BOUNDS = {"prior": (0.01, 0.99), "learn": (0.005, 0.6), "guess": (0.01, 0.45), "slip": (0.01, 0.45)}
MIN_RESPONSES = 30  # fewer responses for a skill: keep the default parameters


@dataclass(frozen=True)
class ParamArrays:
    """Per-skill parameter vectors (n_skills,)."""

    prior: FloatArray
    learn: FloatArray
    guess: FloatArray
    slip: FloatArray
    forget: FloatArray
    item_guess: FloatArray  # the emissions of item results
    item_slip: FloatArray
    item_learn: FloatArray  # P(learn) after an item result

    @classmethod
    def constant(cls, n_skills: int, p: SkillParams = DEFAULT_PARAMS) -> ParamArrays:
        def full(v: float) -> FloatArray:
            return np.full(n_skills, v, dtype=np.float64)

        return cls(full(p.prior), full(p.learn), full(p.guess), full(p.slip), full(p.forget_per_day),
                   full(p.item_guess), full(p.item_slip), full(p.item_learn))  # fmt: skip

    @classmethod
    def from_model(cls, model: BKTModel, skill_ids: Sequence[str]) -> ParamArrays:
        ps = [model.of(s) for s in skill_ids]
        return cls(
            np.array([p.prior for p in ps]),
            np.array([p.learn for p in ps]),
            np.array([p.guess for p in ps]),
            np.array([p.slip for p in ps]),
            np.array([p.forget_per_day for p in ps]),
            np.array([p.item_guess for p in ps]),
            np.array([p.item_slip for p in ps]),
            np.array([p.item_learn for p in ps]),
        )

    def emissions_of(self, seqs: Sequences) -> tuple[FloatArray, FloatArray]:
        """(guess, slip) of every flat row of `seqs`: the item pair for item results."""
        skill = seqs.row_skill
        return (np.where(seqs.item, self.item_guess[skill], self.guess[skill]),
                np.where(seqs.item, self.item_slip[skill], self.slip[skill]))  # fmt: skip

    def with_forget(self, forget: FloatArray) -> ParamArrays:
        return replace(self, forget=forget)

    def to_model(self, skill_ids: Sequence[str]) -> BKTModel:
        return BKTModel(
            params={
                s: SkillParams(
                    prior=float(self.prior[i]),
                    learn=float(self.learn[i]),
                    guess=float(self.guess[i]),
                    slip=float(self.slip[i]),
                    forget_per_day=float(self.forget[i]),
                    floor=float(self.prior[i]),
                    item_guess=float(self.item_guess[i]),
                    item_slip=float(self.item_slip[i]),
                    item_learn=float(self.item_learn[i]),
                )
                for i, s in enumerate(skill_ids)
            }
        )


def _emissions(obs: FloatArray, guess: FloatArray, slip: FloatArray) -> tuple[FloatArray, FloatArray]:
    """P(obs | unmastered), P(obs | mastered); fractional scores are soft evidence."""
    return obs * guess + (1 - obs) * (1 - guess), obs * (1 - slip) + (1 - obs) * slip


def filter_predictions(seqs: Sequences, p: ParamArrays) -> FloatArray:
    """P(correct) for every response given the responses before it (flat, step-major order)."""
    return filter_sequences(seqs, p)[0]


def filter_sequences(seqs: Sequences, p: ParamArrays) -> tuple[FloatArray, FloatArray]:
    """(predictions per response, mastery of each sequence after its last response)."""
    k = seqs.skill
    prior, forget = p.prior[k], p.forget[k]
    guess, slip = p.emissions_of(seqs)
    rate = _learning_rates(seqs, p)
    m = prior.copy()
    pred = np.empty_like(seqs.obs)
    for t in range(seqs.steps):
        n, sl = int(seqs.n_active[t]), seqs.at(t)
        mm = m[:n]
        if t:
            floor = prior[:n]
            decayed = floor + (mm - floor) * np.exp(-forget[:n] * seqs.gap_days[sl])
            mm = np.where(mm > floor, decayed, mm)
        g, s, o = guess[sl], slip[sl], seqs.obs[sl]
        right = mm * (1 - s) + (1 - mm) * g
        pred[sl] = right
        # partial credit mixes the two posteriors, exactly as the online update (bkt.posterior)
        post = o * (mm * (1 - s) / right) + (1 - o) * (mm * s / (1 - right))
        m[:n] = post + (1 - post) * rate[sl]
    return pred, m


def _learning_rates(seqs: Sequences, p: ParamArrays) -> FloatArray:
    """P(learn) in the transition after every flat row: the skill's `learn` after a module study,
    its `item_learn` after an item result (as in bkt.apply_result)."""
    skill = seqs.row_skill
    return np.where(seqs.item, p.item_learn[skill], p.learn[skill])


def log_likelihood_by_skill(seqs: Sequences, p: ParamArrays, n_skills: int) -> FloatArray:
    pred = np.clip(filter_predictions(seqs, p), 1e-6, 1 - 1e-6)
    ll = seqs.obs * np.log(pred) + (1 - seqs.obs) * np.log(1 - pred)
    return np.bincount(seqs.row_skill, weights=ll, minlength=n_skills).astype(np.float64)


def _em_step(seqs: Sequences, p: ParamArrays, n_skills: int) -> tuple[ParamArrays, float]:
    k = seqs.skill
    prior = p.prior[k]
    learn = _learning_rates(seqs, p)  # per flat row: the transition after it
    n_rows = len(seqs.obs)
    a1 = np.empty(n_rows)  # scaled forward P(L_t = 1 | o_1..t)
    scale = np.empty(n_rows)
    e0_all, e1_all = _emissions(seqs.obs, *p.emissions_of(seqs))
    state = prior.copy()  # P(L_t = 1 | o_1..t-1)
    for t in range(seqs.steps):
        n, sl = int(seqs.n_active[t]), seqs.at(t)
        e0, e1 = e0_all[sl], e1_all[sl]
        s1 = state[:n] * e1
        c = s1 + (1 - state[:n]) * e0
        a1[sl] = s1 / c
        scale[sl] = c
        state[:n] = a1[sl] + (1 - a1[sl]) * learn[sl]
    # backward, scaled: b_t(i) = sum_j A(i, j) B_{t+1}(j) b_{t+1}(j) / c_{t+1}
    b0 = np.ones(n_rows)
    b1 = np.ones(n_rows)
    xi01 = np.zeros(n_rows)  # expected 0 -> 1 transitions from row t to t+1
    for t in range(seqs.steps - 2, -1, -1):
        n_next, sl, nxt = int(seqs.n_active[t + 1]), seqs.at(t), seqs.at(t + 1)
        cur = slice(sl.start, sl.start + n_next)
        e0, e1, c = e0_all[nxt], e1_all[nxt], scale[nxt]
        rate = learn[cur]
        w0, w1 = e0 * b0[nxt] / c, e1 * b1[nxt] / c
        b0[cur] = (1 - rate) * w0 + rate * w1
        b1[cur] = w1
        xi01[cur] = (1 - a1[cur]) * rate * w1
    gamma1 = a1 * b1
    gamma0 = (1 - a1) * b0
    total = gamma0 + gamma1
    gamma1, gamma0 = gamma1 / total, gamma0 / total
    flat_skill = seqs.row_skill
    first = seqs.at(0)

    def per_skill(weights: FloatArray, skills: npt.NDArray[np.int64] = flat_skill) -> FloatArray:
        return np.bincount(skills, weights=weights, minlength=n_skills).astype(np.float64)

    not_last = np.zeros(n_rows, dtype=bool)
    for t in range(seqs.steps - 1):
        sl = seqs.at(t)
        not_last[sl.start : sl.start + int(seqs.n_active[t + 1])] = True
    new_prior = per_skill(gamma1[first], k[: int(seqs.n_active[0])]) / np.maximum(np.bincount(k, minlength=n_skills), 1)

    # learning after each kind of result, from the transitions that follow it; a kind a skill has
    # no transitions after keeps its current rate
    def learning(after: npt.NDArray[np.bool_], old: FloatArray) -> FloatArray:
        rows = not_last & after
        seen = per_skill(gamma0 * rows)
        return np.where(seen > 1e-12, per_skill(xi01 * rows) / np.maximum(seen, 1e-12), old)

    new_learn = learning(~seqs.item, p.learn)
    new_item_learn = learning(seqs.item, p.item_learn)
    # each kind of result (module assessment, item) has its own emissions; a kind a skill has no
    # results of keeps its current pair
    module, item = ~seqs.item, seqs.item

    def emission(weights: FloatArray, hits: FloatArray, rows: npt.NDArray[np.bool_], old: FloatArray) -> FloatArray:
        seen = per_skill(weights * rows)
        return np.where(seen > 1e-12, per_skill(weights * hits * rows) / np.maximum(seen, 1e-12), old)

    new_guess = emission(gamma0, seqs.obs, module, p.guess)
    new_slip = emission(gamma1, 1 - seqs.obs, module, p.slip)
    new_item_guess = emission(gamma0, seqs.obs, item, p.item_guess)
    new_item_slip = emission(gamma1, 1 - seqs.obs, item, p.item_slip)
    log_likelihood = float(np.log(scale).sum())

    def bounded(name: str, value: FloatArray) -> FloatArray:
        lo, hi = BOUNDS[name]
        return np.clip(value, lo, hi)

    return (
        ParamArrays(
            prior=bounded("prior", new_prior),
            learn=bounded("learn", new_learn),
            guess=bounded("guess", new_guess),
            slip=bounded("slip", new_slip),
            forget=p.forget,
            item_guess=bounded("guess", new_item_guess),
            item_slip=bounded("slip", new_item_slip),
            item_learn=bounded("learn", new_item_learn),
        ),
        log_likelihood,
    )


def fit_bkt(
    seqs: Sequences,
    n_skills: int,
    *,
    iterations: int = 30,
    tolerance: float = 1e-4,
    fit_forgetting: bool = True,
    progress: Callable[[int, float], None] | None = None,
    reset_degenerate: bool = False,
) -> ParamArrays:
    """EM from pyBKT-like starting values; skills with few responses keep the defaults. With
    `reset_degenerate`, so do skills whose fitted guess or slip sits at its bound: their results
    do not tell mastered from unmastered, and the rest of their fit (learn, prior, forgetting) is
    then meaningless, however well it predicts (Baker, Corbett and Aleven 2008 on degenerate BKT)."""
    start = ParamArrays.constant(
        n_skills, SkillParams(prior=0.3, learn=0.1, guess=0.2, slip=0.1, forget_per_day=0.0, item_learn=0.1)
    )
    params, previous = start, -np.inf
    for i in range(iterations):
        params, ll = _em_step(seqs, params, n_skills)
        if progress:
            progress(i, ll)
        if ll - previous < tolerance * max(abs(ll), 1.0):
            break
        previous = ll
    flat_skill = seqs.row_skill
    few = np.bincount(flat_skill, minlength=n_skills) < MIN_RESPONSES
    few_items = np.bincount(flat_skill[seqs.item], minlength=n_skills) < MIN_RESPONSES
    few_modules = np.bincount(flat_skill[~seqs.item], minlength=n_skills) < MIN_RESPONSES
    default = ParamArrays.constant(n_skills)
    params = ParamArrays(
        prior=np.where(few, default.prior, params.prior),
        learn=np.where(few | few_modules, default.learn, params.learn),
        guess=np.where(few_modules, default.guess, params.guess),
        slip=np.where(few_modules, default.slip, params.slip),
        forget=default.forget.copy() if fit_forgetting else np.zeros(n_skills),
        item_guess=np.where(few_items, default.item_guess, params.item_guess),
        item_slip=np.where(few_items, default.item_slip, params.item_slip),
        item_learn=np.where(few_items, default.item_learn, params.item_learn),
    )
    if reset_degenerate:
        guess_max, slip_max = BOUNDS["guess"][1], BOUNDS["slip"][1]
        module_pinned = (params.guess >= guess_max) | (params.slip >= slip_max)
        item_pinned = (params.item_guess >= guess_max) | (params.item_slip >= slip_max)
        degenerate = (module_pinned & ~few_modules) | (item_pinned & ~few_items)
        params = ParamArrays(**{f.name: np.where(degenerate, getattr(default, f.name), getattr(params, f.name))
                                for f in fields(ParamArrays)})  # fmt: skip
        few = few | degenerate
    if fit_forgetting and seqs.steps > 1 and float(seqs.gap_days.max(initial=0.0)) > 0.5:
        params = _fit_forgetting(seqs, params, n_skills, few)
    return params


def _fit_forgetting(seqs: Sequences, params: ParamArrays, n_skills: int, few: npt.NDArray[np.bool_]) -> ParamArrays:
    best_ll = np.full(n_skills, -np.inf)
    best_rate = params.forget.copy()
    for rate in FORGET_GRID:
        trial = params.with_forget(np.full(n_skills, rate))
        ll = log_likelihood_by_skill(seqs, trial, n_skills)
        better = (ll > best_ll) & ~few
        best_ll = np.where(better, ll, best_ll)
        best_rate = np.where(better, rate, best_rate)
    return params.with_forget(best_rate)
