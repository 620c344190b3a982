"""Fitting BKT per skill: Baum-Welch EM over every (learner, skill) sequence at once, then the
forgetting rate per skill by likelihood over a grid, kept at the default unless the history
identifies it (evidence on both sides of real time gaps).

A module's assessment is graded on the whole module, so a learner's general ability moves the
score as much as their knowledge of one skill does. Fitted without it, the hidden state EM finds
in module scores can be the learner's ability: a state that never changes, read as a skill
known from the start and learned almost never. So the fit integrates over each learner's
ability, a shift of the logit of both module-score emissions shared by all of the learner's
skills, drawn from a discrete distribution whose weights EM fits (latent-factor knowledge
tracing, Khajah, Wing, Lindsey and Mozer 2014, with a grid in place of sampling). The service
does not know a learner's ability, so the module pair it is given is the population's: each
emission averaged over the fitted distribution (docs/decisions/0024-learner-ability-in-the-fit.md).

Also `filter_predictions`: the online BKT update run over whole sequences, predicting each
response before updating on it; the same arithmetic as kt/bkt.apply_result (tested to agree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import numpy.typing as npt

from recommender.kt.bkt import DEFAULT_PARAMS, MODULE_SCORE_WEIGHT, BKTModel, SkillParams
from recommender.kt.sequences import Sequences

FloatArray = npt.NDArray[np.float64]
FORGET_GRID = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# a fitted forgetting rate replaces the default only where the likelihood-ratio test against the
# default rejects it at 5 % (chi-square, one degree of freedom): 2 (LL(best) - LL(default)) > 3.84
FORGET_LR_CRITICAL = 3.84
BOUNDS = {
    "prior": (0.01, 0.99),
    "learn": (0.005, 0.6),  # a practice item's learning step
    "module_learn": (0.005, 0.95),  # a module's: hours of instruction can teach most learners
    "guess": (0.01, 0.45),
    "slip": (0.01, 0.45),
}
MIN_RESPONSES = 30  # fewer responses for a skill: keep the default parameters
MIN_PAIR_STUDIES = 5  # fewer studies of a (module, skill) pair: the skill's rate serves
MODULE_LEARN_SHRINK = 10.0  # pseudo-studies at the skill's rate that a pair's own rate is shrunk with
# the abilities a learner may have: shifts of the module-score logit, one step apart
ABILITY_NODES = np.linspace(-3.0, 3.0, 7)
ABILITY_NEWTON_STEPS = 3  # per EM iteration, for the module-score logits given the abilities


@dataclass(frozen=True)
class AbilityMix:
    """The training learners' abilities as a discrete distribution over ABILITY_NODES. Moving
    every ability and the module-score logits in opposite directions changes nothing, so the
    logits are kept as those of a learner at the distribution's mean: `shifts` are the nodes
    less the mean."""

    weights: FloatArray  # (nodes,), sums to 1

    @classmethod
    def start(cls) -> AbilityMix:
        weights = np.exp(-0.5 * ABILITY_NODES**2)  # a standard normal on the grid
        return cls(weights / weights.sum())

    @property
    def mean(self) -> float:
        return float(self.weights @ ABILITY_NODES)

    @property
    def shifts(self) -> FloatArray:
        return np.asarray(ABILITY_NODES - self.mean)

    def population_pair(self, guess: FloatArray, slip: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The module pair of a learner whose ability is unknown: each emission of a learner at
        the mean ability (`guess`, `slip`) averaged over the distribution. It averages the
        probability of a right item, not the likelihood of a whole score, which for a score
        weighing two items is close to it."""
        shifts = self.shifts[:, None]
        right_unknown = self.weights @ _sigmoid(_logit(guess)[None, :] + shifts)
        right_known = self.weights @ _sigmoid(_logit(1.0 - slip)[None, :] + shifts)
        return np.asarray(right_unknown), np.asarray(1.0 - right_known)


@dataclass(frozen=True)
class ParamArrays:
    """Per-skill parameter vectors (n_skills,), and each module's own learning effect on a skill
    where the history shows it ((module index, skill index) -> P(learn))."""

    prior: FloatArray
    learn: FloatArray
    guess: FloatArray
    slip: FloatArray
    forget: FloatArray
    item_guess: FloatArray  # the emissions of item results on a skill no module has taught yet
    item_slip: FloatArray
    item_learn: FloatArray  # the practice rate: P(learn) after a practice item
    studied_item_guess: FloatArray  # the emissions of item results on a skill a module has taught
    studied_item_slip: FloatArray
    module_learn: Mapping[tuple[int, int], float] = field(default_factory=dict)
    # what mastery decays toward; None: the prior (a fitted skill forgets back to its own prior).
    # A skill kept at the defaults keeps the default floor, so it is served as an untrained
    # service serves it
    floor: FloatArray | None = None

    @classmethod
    def constant(cls, n_skills: int, p: SkillParams = DEFAULT_PARAMS) -> ParamArrays:
        def full(v: float) -> FloatArray:
            return np.full(n_skills, v, dtype=np.float64)

        return cls(full(p.prior), full(p.learn), full(p.guess), full(p.slip), full(p.forget_per_day),
                   full(p.item_guess), full(p.item_slip), full(p.item_learn), full(p.studied_item_guess),
                   full(p.studied_item_slip), floor=full(p.floor))  # fmt: skip

    @classmethod
    def from_model(cls, model: BKTModel, skill_ids: Sequence[str], module_ids: Sequence[str] = ()) -> ParamArrays:
        ps = [model.of(s) for s in skill_ids]
        skill_index = {s: i for i, s in enumerate(skill_ids)}
        module_index = {m: i for i, m in enumerate(module_ids)}
        return cls(
            np.array([p.prior for p in ps]),
            np.array([p.learn for p in ps]),
            np.array([p.guess for p in ps]),
            np.array([p.slip for p in ps]),
            np.array([p.forget_per_day for p in ps]),
            np.array([p.item_guess for p in ps]),
            np.array([p.item_slip for p in ps]),
            np.array([p.item_learn for p in ps]),
            np.array([p.studied_item_guess for p in ps]),
            np.array([p.studied_item_slip for p in ps]),
            {
                (module_index[m], skill_index[s]): rate
                for (m, s), rate in model.module_learn.items()
                if m in module_index and s in skill_index
            },
            np.array([p.floor for p in ps]),
        )

    def emissions_of(self, seqs: Sequences, ability: float = 0.0) -> tuple[FloatArray, FloatArray]:
        """(guess, slip) of every flat row of `seqs`: the item pair for item results, the studied
        item pair for those on a skill a module taught earlier in the sequence; module
        assessments' pair shifted by a learner `ability` (a logit) when one is given."""
        skill, taught = seqs.row_skill, seqs.taught_item
        module_guess, module_slip = self.guess[skill], self.slip[skill]
        if ability:
            module_guess = _sigmoid(_logit(module_guess) + ability)
            module_slip = 1.0 - _sigmoid(_logit(1.0 - module_slip) + ability)
        guess = np.where(seqs.item, self.item_guess[skill], module_guess)
        slip = np.where(seqs.item, self.item_slip[skill], module_slip)
        return (np.where(taught, self.studied_item_guess[skill], guess),
                np.where(taught, self.studied_item_slip[skill], slip))  # fmt: skip

    @property
    def floors(self) -> FloatArray:
        return self.prior if self.floor is None else self.floor

    def with_forget(self, forget: FloatArray) -> ParamArrays:
        return replace(self, forget=forget)

    def to_model(self, skill_ids: Sequence[str], module_ids: Sequence[str] = ()) -> BKTModel:
        return BKTModel(
            params={
                s: SkillParams(
                    prior=float(self.prior[i]),
                    learn=float(self.learn[i]),
                    guess=float(self.guess[i]),
                    slip=float(self.slip[i]),
                    forget_per_day=float(self.forget[i]),
                    floor=float(self.floors[i]),
                    item_guess=float(self.item_guess[i]),
                    item_slip=float(self.item_slip[i]),
                    item_learn=float(self.item_learn[i]),
                    studied_item_guess=float(self.studied_item_guess[i]),
                    studied_item_slip=float(self.studied_item_slip[i]),
                )
                for i, s in enumerate(skill_ids)
            },
            module_learn={(module_ids[m], skill_ids[k]): float(r) for (m, k), r in self.module_learn.items()},
        )


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    return np.asarray(np.log(p / (1.0 - p)), dtype=np.float64)


def _emissions(
    obs: FloatArray, guess: FloatArray, slip: FloatArray, weight: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """P(obs | unmastered), P(obs | mastered): kt.bkt.likelihoods, vectorized."""
    unknown = (guess**obs * (1 - guess) ** (1 - obs)) ** weight
    known = ((1 - slip) ** obs * slip ** (1 - obs)) ** weight
    return unknown, known


def _silent(seqs: Sequences) -> npt.NDArray[np.bool_]:
    """Rows whose evidence is not read (Sequences.silent), as a mask."""
    return np.zeros(len(seqs.obs), dtype=bool) if seqs.silent is None else seqs.silent


def _evidence_weights(seqs: Sequences) -> FloatArray:
    """Items' worth of evidence in each row (as in bkt.apply_result): a module score's weighs
    MODULE_SCORE_WEIGHT items times the skill's weight in the module; none in a silent row."""
    weights = np.where(seqs.item, 1.0, MODULE_SCORE_WEIGHT * seqs.row_weight)
    return weights if seqs.silent is None else np.where(seqs.silent, 0.0, weights)


def filter_predictions(seqs: Sequences, p: ParamArrays) -> FloatArray:
    """P(correct) for every response given the responses before it (flat, step-major order)."""
    return filter_sequences(seqs, p)[0]


def filter_sequences(seqs: Sequences, p: ParamArrays) -> tuple[FloatArray, FloatArray]:
    """(predictions per response, mastery of each sequence after its last response): the online
    update of kt.bkt.apply_result over every sequence at once."""
    pred, _, final = _filter(seqs, p)
    return pred, final


def masteries_before(seqs: Sequences, p: ParamArrays) -> FloatArray:
    """Per response, the mastery the service held just before it (forgetting applied, the
    module's own learning step not yet): what the planner reads when it weighs studying the
    module the response is about."""
    return _filter(seqs, p)[1]


def _filter(seqs: Sequences, p: ParamArrays) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(predictions, masteries before each response's learning step, final masteries)."""
    k = seqs.skill
    prior, forget, floors = p.prior[k], p.forget[k], p.floors[k]
    guess, slip = p.emissions_of(seqs)
    e0_all, e1_all = _emissions(seqs.obs, guess, slip, _evidence_weights(seqs))
    before, after = _learning_rates(seqs, p)
    m = prior.copy()
    pred = np.empty_like(seqs.obs)
    held = np.empty_like(seqs.obs)
    for t in range(seqs.steps):
        n, sl = int(seqs.n_active[t]), seqs.at(t)
        mm = m[:n]
        if t:
            floor = floors[:n]
            decayed = floor + (mm - floor) * np.exp(-forget[:n] * seqs.gap_days[sl])
            mm = np.where(mm > floor, decayed, mm)
        held[sl] = mm
        mm = mm + (1 - mm) * before[sl]
        pred[sl] = mm * (1 - slip[sl]) + (1 - mm) * guess[sl]
        known = mm * e1_all[sl]
        post = known / (known + (1 - mm) * e0_all[sl])
        m[:n] = post + (1 - post) * after[sl]
    return pred, held, m


def pair_rates(seqs: Sequences, p: ParamArrays) -> FloatArray:
    """P(learn) of each of the sequences' (module, skill) pairs: the pair's fitted rate, else the
    skill's, times the skill's weight in the module (as bkt.apply_result learns)."""
    rates = p.learn[seqs.pair_skill].copy()
    for j, (module, skill) in enumerate(zip(seqs.pair_module.tolist(), seqs.pair_skill.tolist(), strict=True)):
        found = p.module_learn.get((module, skill))
        if found is not None:
            rates[j] = found
    rates *= seqs.pair_weight
    return rates


def _learning_rates(seqs: Sequences, p: ParamArrays) -> tuple[FloatArray, FloatArray]:
    """Per flat row, P(learn) in the step before its evidence (a module assessment: the module's
    effect on the skill) and in the step after it (a practice item: the practice rate); checks
    learn in neither (as in bkt.apply_result)."""
    skill = seqs.row_skill
    module_rate = np.where(seqs.pair >= 0, pair_rates(seqs, p)[np.maximum(seqs.pair, 0)] if len(seqs.pair_skill)
                           else 0.0, p.learn[skill] * seqs.row_weight)  # fmt: skip
    before = np.where(seqs.learns_before, module_rate, 0.0)
    after = np.where(seqs.learns_after, p.item_learn[skill], 0.0)
    return before, after


def log_likelihood_by_skill(seqs: Sequences, p: ParamArrays, n_skills: int) -> FloatArray:
    pred = np.clip(filter_predictions(seqs, p), 1e-6, 1 - 1e-6)
    ll = seqs.obs * np.log(pred) + (1 - seqs.obs) * np.log(1 - pred)
    if seqs.silent is not None:  # what is not read as evidence is not explained either
        ll = np.where(seqs.silent, 0.0, ll)
    return np.bincount(seqs.row_skill, weights=ll, minlength=n_skills).astype(np.float64)


@dataclass(frozen=True)
class _Expected:
    """One E-step's statistics per flat row, and each sequence's log-likelihood."""

    gamma0: FloatArray  # P(L_t = 0 | O)
    gamma1: FloatArray
    learned_before: FloatArray  # expected learning in the row's own before-step
    chance_before: FloatArray  # expected chances to learn there (unmastered before it)
    learned_after: FloatArray  # expected learning in the row's after-step (a practice item)
    known_at_start: FloatArray  # (first rows,) P(L_-1 = 1 | O): the prior's share
    sequence_ll: FloatArray  # (sequences,)

    @staticmethod
    def mixed(parts: Sequence[_Expected], row_weights: FloatArray) -> _Expected:
        """The statistics averaged over abilities, each row weighted by its learner's posterior
        (row_weights: (abilities, rows))."""
        n_first = len(parts[0].known_at_start)

        def mix(name: str, weights: FloatArray) -> FloatArray:
            return np.asarray(sum(w * getattr(e, name) for w, e in zip(weights, parts, strict=True)))

        # no sequence has a likelihood of its own any more: a learner's is the mixture's
        return _Expected(
            gamma0=mix("gamma0", row_weights),
            gamma1=mix("gamma1", row_weights),
            learned_before=mix("learned_before", row_weights),
            chance_before=mix("chance_before", row_weights),
            learned_after=mix("learned_after", row_weights),
            known_at_start=mix("known_at_start", row_weights[:, :n_first]),
            sequence_ll=np.zeros(0),
        )


def _expect(
    seqs: Sequences, p: ParamArrays, before: FloatArray, after: FloatArray, guess: FloatArray, slip: FloatArray
) -> _Expected:
    """Forward-backward over every sequence. The hidden state at row t is the one its evidence is
    about: a module assessment's learning step comes before it, a practice item's after it, so
    the transition from row t to t + 1 learns with 1 - (1 - after_t)(1 - before_t+1), and a
    sequence's first row starts from prior, then its own learning step."""
    prior = p.prior[seqs.skill]
    n_rows = len(seqs.obs)
    a1 = np.empty(n_rows)  # scaled forward P(L_t = 1 | o_1..t)
    scale = np.empty(n_rows)
    e0_all, e1_all = _emissions(seqs.obs, guess, slip, _evidence_weights(seqs))
    state = prior.copy()  # P(L = 1 | o_1..t-1) before row t's own learning step
    for t in range(seqs.steps):
        n, sl = int(seqs.n_active[t]), seqs.at(t)
        e0, e1 = e0_all[sl], e1_all[sl]
        st = state[:n] + (1 - state[:n]) * before[sl]
        s1 = st * e1
        c = s1 + (1 - st) * e0
        a1[sl] = s1 / c
        scale[sl] = c
        state[:n] = a1[sl] + (1 - a1[sl]) * after[sl]
    # backward, scaled: b_t(i) = sum_j A(i, j) B_{t+1}(j) b_{t+1}(j) / c_{t+1}
    b0 = np.ones(n_rows)
    b1 = np.ones(n_rows)
    xi01 = np.zeros(n_rows)  # expected 0 -> 1 transitions from row t to t+1
    rate_to_next = np.zeros(n_rows)
    for t in range(seqs.steps - 2, -1, -1):
        n_next, sl, nxt = int(seqs.n_active[t + 1]), seqs.at(t), seqs.at(t + 1)
        cur = slice(sl.start, sl.start + n_next)
        e0, e1, c = e0_all[nxt], e1_all[nxt], scale[nxt]
        rate = 1 - (1 - after[cur]) * (1 - before[nxt])
        rate_to_next[cur] = rate
        w0, w1 = e0 * b0[nxt] / c, e1 * b1[nxt] / c
        b0[cur] = (1 - rate) * w0 + rate * w1
        b1[cur] = w1
        xi01[cur] = (1 - a1[cur]) * rate * w1
    gamma1 = a1 * b1
    gamma0 = (1 - a1) * b0
    total = gamma0 + gamma1
    gamma1, gamma0 = gamma1 / total, gamma0 / total
    first = seqs.at(0)
    n_first = int(seqs.n_active[0])
    # the transitions out of row t split between its own after-step and the next row's before-step
    safe = np.maximum(rate_to_next, 1e-300)
    learned_after = np.where(rate_to_next > 0, xi01 * after / safe, 0.0)  # credited to row t
    learned_before = np.zeros(n_rows)  # credited to row t + 1
    chance_before = np.zeros(n_rows)
    for t in range(seqs.steps - 1):
        n_next, sl, nxt = int(seqs.n_active[t + 1]), seqs.at(t), seqs.at(t + 1)
        cur = slice(sl.start, sl.start + n_next)
        learned_before[nxt] = np.where(rate_to_next[cur] > 0,
                                       xi01[cur] * (1 - after[cur]) * before[nxt] / safe[cur], 0.0)  # fmt: skip
        chance_before[nxt] = (gamma0[cur] - xi01[cur]) + learned_before[nxt]
    # a first row's before-step, from the prior: P(L_-1 = 0, L_0 = 1 | O) and P(L_-1 = 1 | O)
    start = prior[:n_first] + (1 - prior[:n_first]) * before[first]
    learned_before[first] = gamma1[first] * (1 - prior[:n_first]) * before[first] / start
    chance_before[first] = gamma0[first] + learned_before[first]
    known_at_start = gamma1[first] * prior[:n_first] / start
    sequence_ll = np.bincount(seqs.row_sequence, weights=np.log(scale), minlength=len(seqs.skill)).astype(np.float64)
    return _Expected(gamma0, gamma1, learned_before, chance_before, learned_after, known_at_start, sequence_ll)


def _em_step(
    seqs: Sequences, p: ParamArrays, n_skills: int, mix: AbilityMix | None = None
) -> tuple[ParamArrays, AbilityMix | None, float]:
    """One Baum-Welch step (see _expect). With `mix`, the E-step runs once per ability and each
    learner's statistics are weighted by the posterior of their ability given all their
    results; the module-score emissions (at the mean ability) then take Newton steps, having no
    closed form once shifted per ability, and move with the mean as the weights do."""
    before, after = _learning_rates(seqs, p)
    parts: list[_Expected] = []
    if mix is None:
        expected = _expect(seqs, p, before, after, *p.emissions_of(seqs))
        log_likelihood = float(expected.sequence_ll.sum())
    else:
        shifts = mix.shifts
        parts = [_expect(seqs, p, before, after, *p.emissions_of(seqs, float(a))) for a in shifts]
        n_learners = int(seqs.learner.max()) + 1
        by_learner = np.stack([np.bincount(seqs.learner, weights=e.sequence_ll, minlength=n_learners) for e in parts])
        joint = np.log(np.maximum(mix.weights, 1e-300))[:, None] + by_learner
        top = joint.max(axis=0)
        norm = top + np.log(np.exp(joint - top).sum(axis=0))
        posterior = np.exp(joint - norm)  # (abilities, learners)
        log_likelihood = float(norm.sum())
        row_posterior = posterior[:, seqs.row_learner]
        expected = _Expected.mixed(parts, row_posterior)
        evidence = (~seqs.item & ~_silent(seqs)).astype(np.float64)
        scored = np.bincount(seqs.row_learner, weights=evidence, minlength=n_learners) > 0
        previous_mean = mix.mean
        mix = AbilityMix(posterior[:, scored].mean(axis=1)) if scored.any() else mix
    k = seqs.skill
    n_rows = len(seqs.obs)
    gamma0, gamma1 = expected.gamma0, expected.gamma1
    learned_before, chance_before, learned_after = (
        expected.learned_before, expected.chance_before, expected.learned_after)  # fmt: skip
    flat_skill = seqs.row_skill
    n_first = int(seqs.n_active[0])

    def per_skill(weights: FloatArray, skills: npt.NDArray[np.int64] = flat_skill) -> FloatArray:
        return np.bincount(skills, weights=weights, minlength=n_skills).astype(np.float64)

    new_prior = per_skill(expected.known_at_start, k[:n_first]) / np.maximum(np.bincount(k, minlength=n_skills), 1)

    has_next = np.zeros(n_rows, dtype=bool)
    for t in range(seqs.steps - 1):
        sl = seqs.at(t)
        has_next[sl.start : sl.start + int(seqs.n_active[t + 1])] = True

    def ratio(learned: FloatArray, chances: FloatArray, rows: npt.NDArray[np.bool_], old: FloatArray) -> FloatArray:
        seen = per_skill(chances * rows)
        return np.where(seen > 1e-12, per_skill(learned * rows) / np.maximum(seen, 1e-12), old)

    module, practice = seqs.learns_before, seqs.learns_after & has_next
    # a pair's rate is the skill's times its weight in the module, so the skill's rate is learned
    # transitions per weighted chance
    new_learn = ratio(learned_before, chance_before * seqs.row_weight, module, p.learn)
    new_item_learn = ratio(learned_after, gamma0, practice, p.item_learn)
    new_module_learn: dict[tuple[int, int], float] = {}
    if len(seqs.pair_skill):
        rows = seqs.pair >= 0
        n_pairs = len(seqs.pair_skill)
        pair_learned = np.bincount(seqs.pair[rows], weights=learned_before[rows], minlength=n_pairs)
        # a pair's rate is per unit of weight, like the skill's
        pair_chances = np.bincount(seqs.pair[rows], weights=(chance_before * seqs.row_weight)[rows], minlength=n_pairs)
        studies = np.bincount(seqs.pair[rows], minlength=n_pairs)
        lo, hi = BOUNDS["module_learn"]
        # shrunk toward the skill's rate: a pair seen a few times says little on its own
        shrunk = (pair_learned + MODULE_LEARN_SHRINK * np.clip(new_learn, lo, hi)[seqs.pair_skill]) / (
            pair_chances + MODULE_LEARN_SHRINK
        )
        for j in np.flatnonzero(studies >= MIN_PAIR_STUDIES).tolist():
            new_module_learn[(int(seqs.pair_module[j]), int(seqs.pair_skill[j]))] = float(np.clip(shrunk[j], lo, hi))

    # each kind of result (module assessment, item before any study of the skill, item after one)
    # has its own emissions; a kind a skill has no results of keeps its current pair
    taught = seqs.taught_item
    module_rows, item = ~seqs.item & ~_silent(seqs), seqs.item & ~taught

    def emission(weights: FloatArray, hits: FloatArray, rows: npt.NDArray[np.bool_], old: FloatArray) -> FloatArray:
        seen = per_skill(weights * rows)
        return np.where(seen > 1e-12, per_skill(weights * hits * rows) / np.maximum(seen, 1e-12), old)

    new_item_guess = emission(gamma0, seqs.obs, item, p.item_guess)
    new_item_slip = emission(gamma1, 1 - seqs.obs, item, p.item_slip)
    new_studied_guess = emission(gamma0, seqs.obs, taught, p.studied_item_guess)
    new_studied_slip = emission(gamma1, 1 - seqs.obs, taught, p.studied_item_slip)
    if mix is None:  # a module score weighted by the skill's weight in the module, as in its likelihood
        new_guess = emission(gamma0 * seqs.row_weight, seqs.obs, module_rows, p.guess)
        new_slip = emission(gamma1 * seqs.row_weight, 1 - seqs.obs, module_rows, p.slip)
    else:
        new_guess, new_slip = _module_pair_given_ability(seqs, p, parts, row_posterior, shifts, n_skills)
        # the same learners' emissions, read at the new weights' mean
        moved = mix.mean - previous_mean
        new_guess = _sigmoid(_logit(new_guess) + moved)
        new_slip = 1.0 - _sigmoid(_logit(1.0 - new_slip) + moved)

    def bounded(name: str, value: FloatArray) -> FloatArray:
        lo, hi = BOUNDS[name]
        return np.clip(value, lo, hi)

    return (
        ParamArrays(
            prior=bounded("prior", new_prior),
            learn=bounded("module_learn", new_learn),
            guess=bounded("guess", new_guess),
            slip=bounded("slip", new_slip),
            forget=p.forget,
            item_guess=bounded("guess", new_item_guess),
            item_slip=bounded("slip", new_item_slip),
            item_learn=bounded("learn", new_item_learn),
            studied_item_guess=bounded("guess", new_studied_guess),
            studied_item_slip=bounded("slip", new_studied_slip),
            module_learn=new_module_learn,
        ),
        mix,
        log_likelihood,
    )


def _module_pair_given_ability(
    seqs: Sequences,
    p: ParamArrays,
    parts: Sequence[_Expected],
    row_posterior: FloatArray,
    shifts: FloatArray,
    n_skills: int,
) -> tuple[FloatArray, FloatArray]:
    """Each skill's module-score emissions at the mean ability: Newton steps on their logits,
    every module score counted at each ability (`shifts` from the mean) with its learner's
    posterior weight."""
    skill = seqs.row_skill
    # as the pair without abilities is weighted; a silent score is no evidence
    weight = np.where(seqs.item | _silent(seqs), 0.0, seqs.row_weight)
    unknown = [w * e.gamma0 * weight for w, e in zip(row_posterior, parts, strict=True)]
    known = [w * e.gamma1 * weight for w, e in zip(row_posterior, parts, strict=True)]
    logits = []
    for state, start in ((unknown, _logit(p.guess)), (known, _logit(1.0 - p.slip))):
        logit = start
        for _ in range(ABILITY_NEWTON_STEPS):
            gradient = np.zeros(n_skills)
            curvature = np.zeros(n_skills)
            for responsibility, shift in zip(state, shifts, strict=True):
                right = _sigmoid(logit[skill] + shift)
                gradient += np.bincount(skill, weights=responsibility * (seqs.obs - right), minlength=n_skills)
                curvature += np.bincount(skill, weights=responsibility * right * (1 - right), minlength=n_skills)
            # a step at most one logit unit: on thin data the curvature is small and a full
            # Newton step overshoots
            step = np.clip(gradient / np.maximum(curvature, 1e-9), -1.0, 1.0)
            logit = np.where(curvature > 1e-9, logit + step, logit)
        logits.append(logit)
    return _sigmoid(logits[0]), 1.0 - _sigmoid(logits[1])


def fit_bkt(
    seqs: Sequences,
    n_skills: int,
    *,
    iterations: int = 30,
    tolerance: float = 1e-4,
    fit_forgetting: bool = True,
    progress: Callable[[int, float], None] | None = None,
    reset_degenerate: bool = False,
    learner_ability: bool = True,
) -> ParamArrays:
    """EM from pyBKT-like starting values; skills with few responses keep the defaults. Module
    scores are fitted beside the learners' abilities (the module docstring) unless
    `learner_ability` is off; the module pair returned is then the population's. With
    `reset_degenerate`, a pair of emissions the fit pins at a bound (or a learning rate at its
    floor) is set aside: those results do not tell mastered from unmastered, and what was fitted
    from them (learn, prior, forgetting) is then meaningless, however well it predicts (Baker,
    Corbett and Aleven 2008 on degenerate BKT); see _without_degenerate_fits."""
    params, counts, module_pinned = _fit_and_keep(seqs, n_skills, iterations, tolerance, progress, learner_ability)
    few = counts.few
    if reset_degenerate:
        params, few, seqs = _without_degenerate_fits(
            seqs, n_skills, params, counts, module_pinned, iterations, tolerance
        )
    if not fit_forgetting:
        return params.with_forget(np.zeros(n_skills))
    if seqs.steps > 1 and float(seqs.gap_days.max(initial=0.0)) > 0.5:
        params = _fit_forgetting(seqs, params, n_skills, few)
    return params


@dataclass(frozen=True)
class _Counts:
    """Per skill, the kinds of results too few to fit their parameters from (MIN_RESPONSES)."""

    few: npt.NDArray[np.bool_]  # results of any kind
    items: npt.NDArray[np.bool_]  # item results before any study (placement)
    taught: npt.NDArray[np.bool_]  # item results after a study
    practice: npt.NDArray[np.bool_]
    modules: npt.NDArray[np.bool_]  # module assessments whose scores are read
    studies: npt.NDArray[np.bool_]  # module assessments, their scores read or silent

    @classmethod
    def of(cls, seqs: Sequences, n_skills: int) -> _Counts:
        skill, taught = seqs.row_skill, seqs.taught_item

        def few(rows: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
            return np.asarray(np.bincount(skill if rows is None else skill[rows], minlength=n_skills) < MIN_RESPONSES)

        scored = ~seqs.item & ~_silent(seqs)
        return cls(
            few(), few(seqs.item & ~taught), few(taught), few(seqs.learns_after), few(scored), few(seqs.learns_before)
        )


def _fit_and_keep(
    seqs: Sequences,
    n_skills: int,
    iterations: int,
    tolerance: float,
    progress: Callable[[int, float], None] | None,
    learner_ability: bool,
) -> tuple[ParamArrays, _Counts, npt.NDArray[np.bool_]]:
    """EM, then the defaults wherever the fitted kind of result is too few; and which skills'
    module scores the fit pins (see _module_pinned)."""
    start = ParamArrays.constant(
        n_skills, SkillParams(prior=0.3, learn=0.1, guess=0.2, slip=0.1, forget_per_day=0.0, item_learn=0.1)
    )
    params, previous = start, -np.inf
    mix = AbilityMix.start() if learner_ability and bool((~seqs.item).any()) else None
    for i in range(iterations):
        params, mix, ll = _em_step(seqs, params, n_skills, mix)
        if progress:
            progress(i, ll)
        if ll - previous < tolerance * max(abs(ll), 1.0):
            break
        previous = ll
    pinned = _module_pinned(params)
    if mix is not None:
        guess, slip = mix.population_pair(params.guess, params.slip)
        params = replace(params, guess=np.clip(guess, *BOUNDS["guess"]), slip=np.clip(slip, *BOUNDS["slip"]))
    counts = _Counts.of(seqs, n_skills)
    few, few_modules = counts.few, counts.modules
    default = ParamArrays.constant(n_skills)
    params = ParamArrays(
        prior=np.where(few, default.prior, params.prior),
        # identified by what follows a study: its module score, or, where the scores are set
        # aside as silent, item results after enough studies
        learn=np.where(few | (few_modules & (counts.taught | counts.studies)), default.learn, params.learn),
        guess=np.where(few_modules, default.guess, params.guess),
        slip=np.where(few_modules, default.slip, params.slip),
        forget=default.forget.copy(),
        item_guess=np.where(counts.items, default.item_guess, params.item_guess),
        item_slip=np.where(counts.items, default.item_slip, params.item_slip),
        # the practice rate only from practice results: checks never learn, so a skill checked
        # often but never practised keeps the default rate, not the fit's starting value
        item_learn=np.where(counts.practice, default.item_learn, params.item_learn),
        # never the placement items' pair: a history without checks after studies says nothing
        # about how a learner part of the way answers
        studied_item_guess=np.where(counts.taught, default.studied_item_guess, params.studied_item_guess),
        studied_item_slip=np.where(counts.taught, default.studied_item_slip, params.studied_item_slip),
        module_learn={pair: rate for pair, rate in params.module_learn.items() if not few_modules[pair[1]]},
        floor=np.where(few, default.floors, params.prior),
    )
    return params, counts, pinned & ~few_modules


def _module_pinned(params: ParamArrays) -> npt.NDArray[np.bool_]:
    """Skills whose module pair the fit pins at a bound, judged for a learner at the mean ability
    (the population's pair is pulled toward a half by the spread of abilities). A learning rate
    at its floor is pinned too: the module scores are explained with no study teaching anything,
    so they say nothing of what a study does."""
    guess_max, slip_max = BOUNDS["guess"][1], BOUNDS["slip"][1]
    learn_floor = BOUNDS["module_learn"][0]
    return np.asarray((params.guess >= guess_max) | (params.slip >= slip_max) | (params.learn <= learn_floor))


def _without_degenerate_fits(
    seqs: Sequences,
    n_skills: int,
    params: ParamArrays,
    counts: _Counts,
    module_degenerate: npt.NDArray[np.bool_],
    iterations: int,
    tolerance: float,
) -> tuple[ParamArrays, npt.NDArray[np.bool_], Sequences]:
    """The fit with each degenerate pair of emissions set aside (fit_bkt's `reset_degenerate`),
    the skills left at the defaults, and the sequences as the fit reads them. A skill whose
    module scores do not tell mastered from not is fitted again with those scores read as no
    evidence (their studies still teach): its item results then fit the prior and the items'
    emissions alone, and its learning rate where items after a study show it. A skill with a
    degenerate placement pair, or module scores that do not discriminate and too few items to
    fit without them, keeps the defaults throughout."""
    default = ParamArrays.constant(n_skills)
    guess_max, slip_max = BOUNDS["guess"][1], BOUNDS["slip"][1]
    refit_skills = module_degenerate & ~counts.items
    if refit_skills.any():
        seqs = replace(seqs, silent=~seqs.item & refit_skills[seqs.row_skill])
        refit, _, _ = _fit_and_keep(seqs, n_skills, iterations, tolerance, None, False)
        # items after a study identify it; at its floor they show no study teaching anything, as
        # module scores pinned there would (_module_pinned)
        learn_floor = BOUNDS["module_learn"][0]
        learn = np.where(counts.taught | (refit.learn <= learn_floor), default.learn, refit.learn)
        params = ParamArrays(
            **{f.name: np.where(refit_skills, getattr(refit, f.name), getattr(params, f.name))
               for f in fields(ParamArrays) if f.name not in ("module_learn", "learn", "guess", "slip")},
            learn=np.where(refit_skills, learn, params.learn),
            guess=np.where(refit_skills, default.guess, params.guess),
            slip=np.where(refit_skills, default.slip, params.slip),
            module_learn={pair: r for pair, r in params.module_learn.items() if not refit_skills[pair[1]]},
        )  # fmt: skip
    item_pinned = (params.item_guess >= guess_max) | (params.item_slip >= slip_max)
    degenerate = (module_degenerate & ~refit_skills) | (item_pinned & ~counts.items)
    params = ParamArrays(
        **{f.name: np.where(degenerate, getattr(default, f.name), getattr(params, f.name))
           for f in fields(ParamArrays) if f.name != "module_learn"},
        module_learn={pair: rate for pair, rate in params.module_learn.items() if not degenerate[pair[1]]},
    )  # fmt: skip
    # a pinned pair for the items after a study says those items do not tell mastered from not:
    # that pair alone goes back to the defaults, the rest of the skill's fit stands
    taught_pinned = (params.studied_item_guess >= guess_max) | (params.studied_item_slip >= slip_max)
    params = replace(
        params,
        studied_item_guess=np.where(taught_pinned, default.studied_item_guess, params.studied_item_guess),
        studied_item_slip=np.where(taught_pinned, default.studied_item_slip, params.studied_item_slip),
    )
    return params, counts.few | degenerate, seqs


def _fit_forgetting(seqs: Sequences, params: ParamArrays, n_skills: int, few: npt.NDArray[np.bool_]) -> ParamArrays:
    """Each skill's forgetting rate: the grid's most likely, where it is significantly more likely
    than the rate `params` holds (the default), else that rate. Forgetting is identified only by
    evidence on both sides of a gap; where the history has none (a placement check, then one
    module score), every rate explains it about equally, and taking the grid's best would pick
    one by noise or, on an exact tie, the grid's first (no forgetting at all): estimates that never
    decay keep a learner who forgot "ready" and the path stops short."""
    kept_ll = log_likelihood_by_skill(seqs, params, n_skills)
    best_ll = np.full(n_skills, -np.inf)
    best_rate = params.forget.copy()
    for rate in FORGET_GRID:
        trial = params.with_forget(np.full(n_skills, rate))
        ll = log_likelihood_by_skill(seqs, trial, n_skills)
        better = (ll > best_ll) & ~few
        best_ll = np.where(better, ll, best_ll)
        best_rate = np.where(better, rate, best_rate)
    significant = 2.0 * (best_ll - kept_ll) > FORGET_LR_CRITICAL
    return params.with_forget(np.where(significant, best_rate, params.forget))
