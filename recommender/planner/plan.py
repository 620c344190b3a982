"""plan_path(): one learner's ordered next modules; plan_paths(): many learners' at once. Pure and
deterministic (ties go to the smaller module id), vectorized over modules and learners so a step
costs a few numpy operations for a whole batch.

Each step picks, among eligible modules, the best of
    value = projected readiness gain toward the role + UNLOCK_WEIGHT * what it unlocks toward it
    score = value * (ZPD_FLOOR + (1 - ZPD_FLOOR) * zpd(expected success)) / sqrt(hours)
where zpd peaks at TARGET_SUCCESS: not trivial, not hopeless (the zone of proximal development).
After a step the planner projects the learner's expected mastery, so the next step builds on it:
studying a module is a learning step at the module's own rate for each skill (its fitted effect,
else the skill's rate), and as its assessment comes after the learning, the expected estimate
after it is the learned mastery itself (a posterior's expectation is its prior). Projected mastery
never decreases, hence neither does readiness along the path.

One notion of mastery (PlanOptions.mastery_confidence) serves role requirements, prerequisites,
checks and readiness. A prerequisite is satisfied when mastered, or placed earlier in the path;
one studied and not mastered blocks its dependents, and the path re-teaches it first
(REASON_CODE_REMEDIATE). A module failed max_module_attempts times is not planned again: the
path routes around it through other modules teaching its skills, or stops with REPEATED_FAILURE
and names it (blockers). When a role skill's estimate has stalled below its target after several
studies, the first step is a skill check instead (_skill_check).

A role skill no module the learner can take teaches (languages, HSK level, exclusions, catalog)
is out of reach: the path stops with ROLE_OUT_OF_REACH, names first what blocks each such skill
(blockers), and plans toward the rest; a module is neither valued nor explained by what it
unlocks for modules the learner cannot take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from recommender.domain.catalog import Catalog, TargetRole
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, PathStep, Reason, ReasonCode, SkillGain, StepKind, StopReason
from recommender.errors import PreconditionFailed
from recommender.planner.arrays import CatalogArrays, ModuleView, SkillParamArrays, primary_language
from recommender.planner.reasons import Renderer

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

TARGET_SUCCESS = 0.7
ZPD_WIDTH = 0.25
ZPD_FLOOR = 0.4
UNLOCK_WEIGHT = 0.5
SIMILAR_LEARNERS_MIN_SUCCESS = 0.6
EPS = 1e-9
CHECK_MINUTES_PER_SKILL = 15


@dataclass(frozen=True)
class PlanOptions:
    target_role_id: str
    languages: tuple[str, ...]
    max_steps: int = 10
    time_budget_minutes: int = 0
    exclude_module_ids: frozenset[str] = frozenset()
    locale: str = "en"
    # the service's mastery is P(the learner has mastered a skill, at the level a role asks or a
    # module's dependents need): one confidence at which a skill counts as mastered, for role
    # requirements, prerequisites, checks and readiness alike (docs/decisions/0003-one-mastery.md)
    mastery_confidence: float = 0.8
    # None: off. Otherwise the mastery fed in is a level itself, not a probability (a simulator's
    # oracle fed the truth): a requirement is then met at level + level_margin * (1 - level), and a
    # prerequisite at mastery_confidence read as a level
    level_margin: float | None = None
    # studies (module results) after which a role skill still below its target gets a skill check
    # first; 0 never plans one
    check_after_studies: int = 3
    # module assessments after which a module still not mastered is not planned again (0: no limit)
    max_module_attempts: int = 3


@dataclass(frozen=True)
class LearnerState:
    """What the planner knows of a learner, per skill in catalog.skill_ids order."""

    learner: Learner
    mastery: FloatArray  # now, forgetting applied; the BKT prior for never-practiced skills
    peak: FloatArray  # mastery right after the last practice (0 when never practiced)
    days_since_practice: FloatArray  # NaN when never practiced
    # module assessments recorded per module: a studied module not yet mastered is remediated
    # before what depends on it, and one failed max_module_attempts times is not planned again
    studied: Mapping[str, int] = field(default_factory=dict)
    # module-level results per skill since its last item result (None: no skill check is planned)
    studies_since_check: IntArray | None = None


@dataclass(frozen=True)
class ModelOpinion:
    """The hybrid model's predicted success per module for this learner (catalog order)."""

    success: FloatArray
    version: str


@dataclass(frozen=True)
class PlanInput:
    """One learner's planning problem."""

    state: LearnerState
    options: PlanOptions
    model: ModelOpinion | None = None


# learners planned together in one set of array operations; any size gives the same paths
BATCH = 256


def plan_path(
    arrays: CatalogArrays,
    kt: SkillParamArrays,
    state: LearnerState,
    options: PlanOptions,
    now: datetime,
    model: ModelOpinion | None = None,
) -> LearningPath:
    result = plan_paths(arrays, kt, [PlanInput(state, options, model)], now)[0]
    if isinstance(result, PreconditionFailed):
        raise result
    return result


def plan_paths(
    arrays: CatalogArrays, kt: SkillParamArrays, inputs: Sequence[PlanInput], now: datetime
) -> list[LearningPath | PreconditionFailed]:
    """Paths for many learners, in input order; a learner no step can be planned for gets the
    PreconditionFailed naming the blocking constraint instead. Learners with the same role,
    thresholds and model presence are planned together, each step one set of numpy operations
    over all of them, so a cohort pays numpy's per-call cost once per step, not once per learner.

    A learner's path never depends on who else is in the batch: every operation is elementwise or
    sums along the learner's own rows of a C-ordered array, so batch and single-learner planning
    agree bit for bit (tested). Hence no BLAS products (their rounding depends on the matrix
    shapes), and gathers along axis 1 use np.take: m[:, idx] is column-major, and numpy sums the
    rows of a column-major array in another order than a single row (pairwise from 8 terms)."""
    results: dict[int, LearningPath | PreconditionFailed] = {}
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        o = x.options
        key = (o.target_role_id, o.mastery_confidence, o.level_margin, o.max_module_attempts, x.model is not None)
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        for start in range(0, len(members), BATCH):
            part = members[start : start + BATCH]
            for i, result in zip(part, _plan_batch(arrays, kt, [inputs[i] for i in part], now), strict=True):
                results[i] = result
    return [results[i] for i in range(len(inputs))]


@dataclass(frozen=True)
class _RoleArrays:
    """A role's requirements laid out over its view's padded (module, skill) pairs. Padding points
    at a sentinel skill slot (index n_skills) that is always mastered (1.0) and weighs nothing, so
    no step needs a copy or a mask."""

    role: TargetRole
    view: ModuleView
    kt: SkillParamArrays
    req_idx: npt.NDArray[np.intp]  # the role's skills, in requirement order
    level: FloatArray  # the mastery that counts as meeting each requirement
    weight: FloatArray  # each requirement's share of readiness
    requirement_of: npt.NDArray[np.intp]  # skill -> its requirement, or len(req_idx)
    pad_req: npt.NDArray[np.intp]
    pad_level: FloatArray
    pad_weight: FloatArray
    module_guess: FloatArray
    module_right: FloatArray
    bkt: _LearningPads
    content_shift: FloatArray
    hours_penalty: FloatArray
    check_skills: npt.NDArray[np.intp]  # the role's skills, then the other skills its view's modules teach
    check_targets: FloatArray  # the mastery each must reach: its requirement's target, else the confidence

    @classmethod
    def of(
        cls, arrays: CatalogArrays, kt: SkillParamArrays, role: TargetRole, confidence: float, margin: float | None
    ) -> _RoleArrays:
        """Built once per role, targets and BKT parameters, then kept with the catalog arrays."""
        key = ("role-arrays", role.role_id, confidence, margin)
        found = arrays.derived.get(key)
        if isinstance(found, _RoleArrays) and found.kt is kt and found.role is role:
            return found
        built = cls.build(arrays, kt, role, confidence, margin)
        arrays.derived[key] = built
        return built

    @classmethod
    def build(
        cls, arrays: CatalogArrays, kt: SkillParamArrays, role: TargetRole, confidence: float, margin: float | None
    ) -> _RoleArrays:
        catalog = arrays.catalog
        view = arrays.role_view(role.role_id)
        n_skills = len(catalog.skill_ids)
        req_idx = np.array([catalog.skill_index[r.skill_id] for r in role.requirements], dtype=np.intp)
        level = requirement_targets(role, confidence, margin)
        weight = np.array([r.weight for r in role.requirements])
        weight = weight / weight.sum()
        pad = view.skill_pad
        requirement_of = np.full(n_skills + 1, len(req_idx), dtype=np.intp)
        requirement_of[req_idx] = np.arange(len(req_idx))
        pad_req = requirement_of[pad]  # requirement index, or len(req_idx) for skills the role does not need
        on_the_way = sorted({s for skills in view.skill_lists for s in skills} - set(req_idx.tolist()))
        check_skills = req_idx.tolist() + on_the_way
        # padding gets guess = slip = 0.5 so the BKT update stays finite there (its weight is 0)
        pad_guess, pad_slip = (np.append(a, 0.5)[pad] for a in (kt.guess, kt.slip))
        return cls(
            role=role,
            view=view,
            kt=kt,
            req_idx=req_idx,
            level=level,
            weight=weight,
            requirement_of=requirement_of,
            pad_req=pad_req,
            pad_level=np.append(level, 1.0)[pad_req],
            pad_weight=np.append(weight, 0.0)[pad_req],
            module_guess=(view.pad_share * pad_guess).sum(axis=1),
            module_right=1.0 - (view.pad_share * pad_slip).sum(axis=1),
            bkt=_LearningPads(kt.learn_pads(view)),
            content_shift=2.0 * (0.5 - view.difficulty),
            hours_penalty=1.0 / np.sqrt(view.minutes / 60.0),
            check_skills=np.array(check_skills, dtype=np.intp),
            check_targets=np.r_[level, np.full(len(check_skills) - len(req_idx), confidence)],
        )

    def mastered(self, m_pad: FloatArray, threshold: float) -> BoolArray:
        """(learners, view modules): whether each module counts as mastered, its skills' mastery
        averaged by their weight in it (a secondary skill a module touches lightly does not hold
        back what depends on the module)."""
        return np.asarray((self.view.pad_share * m_pad).sum(axis=2) >= threshold - EPS)

    def implied(self, mastered: BoolArray) -> BoolArray:
        """`mastered` with every module behind a mastered one marked mastered too: prerequisites
        are what a module builds on, so mastering it shows them mastered (knowledge-space theory's
        surmise relation). A learner whose placement shows a deep skill is not re-taught the
        shallow ones beneath it. Sums of 0/1 are exact, so the product cannot differ by batch."""
        if not mastered.any():
            return mastered
        behind = np.asarray(self.view.behind > 0, dtype=np.float64)
        return np.asarray(mastered | ((mastered.astype(np.float64) @ behind.T) > 0))

    def readiness(self, mastery: FloatArray) -> FloatArray:
        """Weighted share of requirements met, per row of mastery (learners, skills + sentinel)."""
        return self.readiness_of(np.take(mastery, self.req_idx, axis=1))

    def readiness_of(self, role_mastery: FloatArray) -> FloatArray:
        """readiness() from the mastery of the role's skills (learners, requirements)."""
        return np.asarray((np.minimum(role_mastery / self.level, 1.0) * self.weight).sum(axis=1))


def requirement_targets(role: TargetRole, confidence: float, level_margin: float | None = None) -> FloatArray:
    """The mastery at which each of the role's requirements counts as met (PlanOptions): the one
    mastery confidence, whatever the level (the level is what the platform's checks are pitched
    at, not how sure the service must be); in level mode, level + margin * (1 - level)."""
    required = np.array([r.level for r in role.requirements], dtype=np.float64)
    if level_margin is None:
        return np.full(len(required), confidence)
    return np.asarray(required + level_margin * (1.0 - required), dtype=np.float64)


def _plan_batch(
    arrays: CatalogArrays, kt: SkillParamArrays, inputs: Sequence[PlanInput], now: datetime
) -> list[LearningPath | PreconditionFailed]:
    """Learners with the same role, thresholds and model presence, planned step by step together.
    Arrays are (learners, ...); each step works on the learners still planning (`work`)."""
    catalog = arrays.catalog
    first = inputs[0].options
    role = catalog.roles[first.target_role_id]
    ra = _RoleArrays.of(arrays, kt, role, first.mastery_confidence, first.level_margin)
    view = ra.view
    size, n_skills, n_view = len(inputs), len(catalog.skill_ids), len(view.module_ids)
    threshold = first.mastery_confidence
    pad = view.skill_pad

    mastery = np.ones((size, n_skills + 1))  # the last column is the sentinel skill
    mastery[:, :n_skills] = np.stack([x.state.mastery for x in inputs])
    allowed = _allowed(arrays, view, inputs)
    attempts = np.zeros((size, n_view), dtype=np.int64)
    for b, x in enumerate(inputs):
        for module_id, count in x.state.studied.items():
            if module_id in view.position:
                attempts[b, view.position[module_id]] = count
    # a module mastered now or, when the learner has no result on any of its skills, implied
    # mastered by a mastered module it lies behind (direct evidence always rules)
    m_pad_now = np.take(mastery, pad, axis=1)  # C-ordered, so sums do not depend on the batch
    direct = ra.mastered(m_pad_now, threshold)
    practiced = np.zeros((size, n_skills + 1), dtype=bool)
    practiced[:, :n_skills] = ~np.isnan(np.stack([x.state.days_since_practice for x in inputs]))
    # nor to modules teaching a role skill still short of its target: readiness needs them taught
    role_short = ((ra.pad_req < len(ra.req_idx)) & (m_pad_now < ra.pad_level)).any(axis=2)
    implied_only = ra.implied(direct) & ~direct & ~np.take(practiced, pad, axis=1).any(axis=2) & ~role_short
    mastered_now = direct | implied_only
    failed_out = np.zeros_like(allowed)
    if first.max_module_attempts > 0:
        # not a module the learner mastered when last practised and has since forgotten: a review
        peaks = np.ones((size, n_skills + 1))
        peaks[:, :n_skills] = np.stack([x.state.peak for x in inputs])
        was_mastered = ra.mastered(np.take(peaks, pad, axis=1), threshold)
        failed_out = (attempts >= first.max_module_attempts) & ~mastered_now & ~was_mastered
    readiness_now = ra.readiness(mastery)
    reachable = _reachable(ra, allowed, mastered_now)
    unreachable = _unreachable_skills(catalog, ra, reachable, mastery)
    peak = np.stack([x.state.peak[ra.req_idx] for x in inputs])
    review_due = (peak >= ra.level) & (mastery[:, ra.req_idx] < ra.level)
    model_logit = None
    if inputs[0].model is not None:
        p = np.clip(np.stack([x.model.success[view.modules] for x in inputs if x.model is not None]), 1e-4, 1 - 1e-4)
        model_logit = np.log(p / (1.0 - p))
    renderers = [arrays.renderer(x.options.locale) for x in inputs]

    explain = _Explainer(catalog, ra, threshold, {id(x): reachable[b] for b, x in enumerate(inputs)})
    steps: list[list[PathStep]] = [[] for _ in inputs]
    minutes_used = np.zeros(size)
    for b, x in enumerate(inputs):
        check = _skill_check(catalog, x.state, x.options, ra, renderers[b])
        if check is not None:
            steps[b].append(check)
            minutes_used[b] += check.estimated_minutes
    # what each module unlocks toward the role is behind @ (need taught by each unplaced module);
    # as need is per requirement, that is (behind @ teaches_role, less the placed modules' rows) @
    # need. The first factor is kept per learner (a last column, never needed, takes the updates
    # of skills the role does not require); a step then computes it only for the modules where
    # it counts (eligible, not yet mastered) and updates only the columns of the placed module's
    # skills, so a step costs O(modules x skills per module), not O(modules x requirements).
    n_req = len(ra.req_idx)
    behind_unplaced = np.zeros((size, n_view, n_req + 1))
    behind_unplaced[:, :, :n_req] = _reachable_behind_teaches(view, reachable)
    work = _Work(
        ids=np.arange(size),
        mastery=mastery,
        placed=np.zeros((size, n_view), dtype=bool),
        implied=mastered_now,
        allowed=allowed,
        flagged=failed_out if failed_out.any() else None,
        model_logit=model_logit,
        behind_unplaced=behind_unplaced,
        minutes_used=minutes_used,
        taken=np.array([len(s) for s in steps]),
        max_steps=np.array([x.options.max_steps for x in inputs]),
        budget=np.array([x.options.time_budget_minutes for x in inputs], dtype=np.float64),
    )
    stops = [StopReason.MAX_STEPS] * size
    first_study = np.full(size, -1)  # the view module a path starts with, when it starts with a study
    supported: list[list[int]] = [[] for _ in inputs]  # failed-out modules retaken, with support
    readiness_after = np.zeros(size)
    need_ext = np.zeros((size, n_req + 1))  # the last column pads: always 0
    satisfied_ext = np.ones((size, n_view + 1), dtype=bool)  # the last slot pads prerequisite lists
    everyone = np.arange(size)

    def finish(done: BoolArray) -> _Work:
        """Record the final readiness of the learners in `done` and go on without them."""
        readiness_after[work.ids[done]] = ra.readiness(work.mastery[done])
        return work.keep(~done)

    while True:
        m_role = np.take(work.mastery, ra.req_idx, axis=1)
        ready = ra.readiness_of(m_role) >= 1.0 - EPS
        done = ready | (work.taken >= work.max_steps)  # the others stop at MAX_STEPS
        if done.any():
            for b in work.ids[ready].tolist():
                stops[b] = StopReason.ROLE_READY
            work, m_role = finish(done), m_role[~done]
        k = len(work.ids)
        if not k:
            break
        m = work.mastery
        m_pad = np.take(m, pad, axis=1)  # (learners, modules, skills per module)
        satisfied = ra.mastered(m_pad, threshold) | work.placed | work.implied
        sat_ext = satisfied_ext[:k]
        sat_ext[:, :n_view] = satisfied
        eligible = work.allowed & sat_ext[:, view.prereq_pad].all(axis=2) & ~work.placed
        # P(success) per module: BKT's prediction shifted by difficulty, blended in logit space
        # with the hybrid model's prediction when one is active
        known = (view.pad_share * m_pad).sum(axis=2)
        # np.minimum(np.maximum()) is np.clip, at a fraction of its per-call cost
        content = np.minimum(np.maximum(known * ra.module_right + (1.0 - known) * ra.module_guess, 1e-4), 1 - 1e-4)
        logit = np.log(content / (1.0 - content)) + ra.content_shift
        if work.model_logit is not None:
            logit = 0.5 * logit + 0.5 * work.model_logit
        success = 1.0 / (1.0 + np.exp(-logit))
        # projected mastery of each module's skills after studying it
        updated = ra.bkt.expected_update(m_pad)
        projected = np.maximum(m_pad + view.pad_weights * (updated - m_pad), m_pad)
        gain = (
            ra.pad_weight * (np.minimum(projected / ra.pad_level, 1.0) - np.minimum(m_pad / ra.pad_level, 1.0))
        ).sum(axis=2)
        need = need_ext[:k]
        need[:, :n_req] = np.maximum(ra.level - m_role, 0.0) / ra.level * ra.weight
        flat_unlock = np.zeros(k * n_view)  # (learner, module) pairs, flat
        frontier = np.flatnonzero(eligible & ~satisfied)
        if frontier.size:
            behind = np.take(work.behind_unplaced.reshape(k * n_view, n_req + 1), frontier, axis=0)
            flat_unlock[frontier] = (behind * np.take(need, frontier // n_view, axis=0)).sum(axis=1)
        unlock = flat_unlock.reshape(k, n_view)
        value = gain + UNLOCK_WEIGHT * np.maximum(unlock, 0.0) * ~satisfied
        candidates = eligible & (value > EPS)
        over_budget = np.zeros(k, dtype=bool)
        limited = work.budget > 0
        if limited.any():
            fits = ~limited[:, None] | (work.minutes_used[:, None] + view.minutes <= work.budget[:, None])
            over_budget = candidates.any(axis=1) & ~(candidates & fits).any(axis=1)
            candidates &= fits
        halted = np.zeros(k, dtype=bool)
        if work.flagged is not None:
            # route around a module failed max_module_attempts times; when only such modules are
            # left, retake one with a person's support and end the path there (it never loops)
            preferred = candidates & ~work.flagged
            halted = candidates.any(axis=1) & ~preferred.any(axis=1)
            candidates = np.where(halted[:, None], candidates, preferred)
        stuck = ~candidates.any(axis=1)
        some_stuck = bool(stuck.any())
        going = np.flatnonzero(~stuck) if some_stuck else everyone[:k]
        if going.size:  # then some module is a candidate (and the view is not empty)
            zpd = np.exp(-(((success - TARGET_SUCCESS) / ZPD_WIDTH) ** 2))
            score = value * (ZPD_FLOOR + (1.0 - ZPD_FLOOR) * zpd) * ra.hours_penalty
            choice = np.argmax(np.where(candidates, score, -np.inf), axis=1)  # first max = smallest id
            for i, j in zip(going.tolist(), choice[going].tolist(), strict=True):
                b = int(work.ids[i])
                if not steps[b]:
                    first_study[b] = j
                steps[b].append(
                    explain.step(inputs[b], renderers[b], len(steps[b]) + 1, work.mastery[i], j, projected[i, j],
                                 score.item(i, j), success.item(i, j), unlock.item(i, j), satisfied[i], review_due[b])
                )  # fmt: skip
                if halted[i]:
                    supported[b].append(j)
                    stops[b] = StopReason.REPEATED_FAILURE
            chosen = choice[going] if some_stuck else choice
            rows = going if some_stuck else slice(None)  # the same rows, without a gather
            work.placed[going, chosen] = True
            work.minutes_used[rows] += view.minutes[chosen]
            work.taken[rows] += 1
            work.behind_unplaced[going[:, None], :, ra.pad_req[chosen]] -= view.behind.T[chosen][:, None, :]
        if some_stuck:
            for b, over in zip(work.ids[stuck].tolist(), over_budget[stuck].tolist(), strict=True):
                stops[b] = StopReason.TIME_BUDGET if over else StopReason.NO_ELIGIBLE_MODULE
        if some_stuck or halted.any():
            work = finish(stuck | halted)

    for b, j in enumerate(first_study.tolist()):
        implied_first = [p for p in view.prereq_pad[j].tolist() if p < n_view and implied_only[b, p]] if j >= 0 else []
        if implied_first:
            confirmed = _confirm_first(catalog, ra, inputs[b], renderers[b], steps[b], implied_first)
            if confirmed is not None:
                kept = confirmed[1:]
                if len(kept) < len(steps[b]):  # a step gave way to the check: the path ends earlier
                    on_path = {s.module_id for s in kept}
                    supported[b] = [k for k in supported[b] if view.module_ids[k] in on_path]
                    budget = inputs[b].options.time_budget_minutes
                    over = (
                        budget > 0
                        and sum(s.estimated_minutes for s in confirmed) + steps[b][len(kept)].estimated_minutes > budget
                    )
                    stops[b] = StopReason.TIME_BUDGET if over else StopReason.MAX_STEPS
                    readiness_after[b] = _readiness_after(catalog, ra, inputs[b].state.mastery, kept)
                steps[b] = confirmed
    results: list[LearningPath | PreconditionFailed] = []
    for b, x in enumerate(inputs):
        # the weakest skill as of now: `mastery` rows are projected along the path only while they
        # share the batch's array, so reading them here would depend on the batch
        blockers = explain.needs_support(x, renderers[b], x.state.mastery, supported[b]) if supported[b] else ()
        if stops[b] is StopReason.ROLE_READY:
            # the path got there: a prerequisite no module in reach teaches became mastered through
            # another module teaching its skills, so nothing was out of reach after all
            unreachable[b] = ()
        if unreachable[b]:
            # the role is out of reach: say so first, and plan toward the reachable part
            out_of_reach = _out_of_reach(arrays, ra, x, renderers[b], allowed[b], reachable[b], mastered_now[b],
                                         unreachable[b])  # fmt: skip
            blockers = out_of_reach + blockers
            if stops[b] in (StopReason.MAX_STEPS, StopReason.NO_ELIGIBLE_MODULE):
                stops[b] = StopReason.ROLE_OUT_OF_REACH
        # a learner who can follow some module of the catalog always gets a path, if only to say
        # what blocks the role; one who can follow none, or whose request leaves nothing, does not
        answered = stops[b] is StopReason.ROLE_READY or (
            stops[b] is StopReason.ROLE_OUT_OF_REACH and arrays.language_mask(x.options.languages, 99).any()
        )
        if not steps[b] and not answered:
            blocking = _blocking_constraint(arrays, x.state, x.options, ra.req_idx, ra.level)
            results.append(PreconditionFailed(blocking, subject="path"))
            continue
        results.append(
            LearningPath(
                learner_id=x.state.learner.learner_id,
                target_role_id=role.role_id,
                steps=tuple(steps[b]),
                readiness_now=float(readiness_now[b]),
                readiness_after=float(readiness_after[b]),
                stop_reason=stops[b],
                unreachable_skill_ids=unreachable[b],
                model_version=x.model.version if x.model else "",
                generated_at=now,
                blockers=blockers,
                locale=renderers[b].key,
            )
        )
    return results


@dataclass(frozen=True)
class _Work:
    """The learners of a batch still planning, a row each (ids: their index in the batch). Rows
    of learners who stop are dropped, so a step never gathers the active rows of every array."""

    ids: npt.NDArray[np.intp]
    mastery: FloatArray  # (learners, skills + sentinel), projected along the path
    placed: BoolArray
    implied: BoolArray  # mastered when planning began, or behind a module that was
    allowed: BoolArray
    flagged: BoolArray | None  # modules failed max_module_attempts times and not mastered; None: none
    model_logit: FloatArray | None
    behind_unplaced: FloatArray
    minutes_used: FloatArray
    taken: npt.NDArray[np.int64]
    max_steps: npt.NDArray[np.int64]
    budget: FloatArray

    def keep(self, rows: BoolArray) -> _Work:
        logit = None if self.model_logit is None else self.model_logit[rows]
        flagged = None if self.flagged is None else self.flagged[rows]
        return _Work(self.ids[rows], self.mastery[rows], self.placed[rows], self.implied[rows], self.allowed[rows],
                     flagged,
                     logit, self.behind_unplaced[rows], self.minutes_used[rows], self.taken[rows],
                     self.max_steps[rows], self.budget[rows])  # fmt: skip


def _allowed(arrays: CatalogArrays, view: ModuleView, inputs: Sequence[PlanInput]) -> BoolArray:
    """(learners, view modules): taught in the learner's languages at their HSK level, not excluded."""
    masks: dict[tuple[tuple[str, ...], int], BoolArray] = {}
    allowed = np.empty((len(inputs), len(view.module_ids)), dtype=bool)
    for b, x in enumerate(inputs):
        key = (x.options.languages, x.state.learner.chinese_level)
        mask = masks.get(key)
        if mask is None:
            mask = masks[key] = arrays.language_mask(*key)[view.modules]
        allowed[b] = mask
        for module_id in x.options.exclude_module_ids:
            if module_id in view.position:
                allowed[b, view.position[module_id]] = False
    return allowed


class _LearningPads:
    """P(learn) over the padded (module, skill) pairs, with its complement computed once per plan
    instead of once per step (same arithmetic, same bits)."""

    def __init__(self, learn: FloatArray) -> None:
        self.learn, self.keep = learn, 1 - learn

    def expected_update(self, m: FloatArray) -> FloatArray:
        """Expected mastery estimate after studying: the learning step, m + (1 - m) learn. The
        module's assessment comes after it, and the expected posterior of any evidence is its
        prior, so the assessment moves the estimate only in expectation-neutral ways."""
        return np.asarray(m * self.keep + self.learn, dtype=np.float64)


@dataclass
class _Explainer:
    """Builds a batch's study steps: moves the learner's mastery row to the step's projection and
    says why. Per-step work in plain Python values (per-element numpy scalars cost more than the
    arithmetic), with what does not depend on the learner computed once per batch."""

    catalog: Catalog
    ra: _RoleArrays
    threshold: float  # a prerequisite's mastery confidence
    # per learner (keyed by id() of their PlanInput, alive for the batch): the view modules they can
    # take, now or once earlier steps are done; a PREREQUISITE_FOR reason names only these
    reachable: dict[int, BoolArray]
    levels: list[float] = field(init=False)
    requirement_of: list[int] = field(init=False)
    language: dict[tuple[int, tuple[str, ...]], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.levels = self.ra.level.tolist()
        self.requirement_of = self.ra.requirement_of.tolist()

    def step(
        self,
        x: PlanInput,
        renderer: Renderer,
        position: int,
        mastery: FloatArray,
        j: int,
        projected: FloatArray,
        score: float,
        success: float,
        unlock: float,
        satisfied: BoolArray,
        review_due: BoolArray,
    ) -> PathStep:
        """Place view module j, whose skills' projected mastery (padded) the step loop computed."""
        catalog, ra, levels = self.catalog, self.ra, self.levels
        view = ra.view
        module = catalog.modules[view.module_ids[j]]
        skills = view.skill_lists[j]
        before = [mastery.item(s) for s in skills]
        after = projected[: len(skills)].tolist()
        for s, a in zip(skills, after, strict=True):
            mastery[s] = a

        reasons: list[Reason] = []
        review = False
        attempts = x.state.studied.get(module.module_id, 0)
        if attempts:
            weakest = min(range(len(skills)), key=lambda i: (before[i], i))
            reasons.append(renderer.reason(ReasonCode.REMEDIATE, module.module_id, str(attempts),
                                           catalog.skill_ids[skills[weakest]], f"{before[weakest]:.2f}",
                                           f"{self._target(skills[weakest]):.2f}"))  # fmt: skip
        # the role's skills this module teaches that are still short of their level, in role order
        gaps = sorted(
            (r, s, b)
            for r, s, b in zip([self.requirement_of[s] for s in skills], skills, before, strict=True)
            if r < len(levels) and b < levels[r]
        )
        for r, s, b in gaps:
            skill_id = catalog.skill_ids[s]
            if review_due[r]:
                review = True
                days = x.state.days_since_practice[s]
                reasons.append(renderer.reason(ReasonCode.REVIEW_DUE, skill_id, f"{days:.0f}"))
            reasons.append(renderer.reason(ReasonCode.SKILL_GAP, skill_id, f"{b:.2f}", f"{levels[r]:.2f}"))
            reasons.append(renderer.reason(ReasonCode.ROLE_REQUIRES, ra.role.role_id, skill_id))
        if unlock > EPS and not satisfied[j]:
            unlocked = _best_unlocked(view, j, satisfied, self.reachable[id(x)])
            if unlocked is not None:
                reasons.append(renderer.reason(ReasonCode.PREREQUISITE_FOR, unlocked))
        if x.model is not None:
            similar = x.model.success.item(view.modules[j])
            if similar >= SIMILAR_LEARNERS_MIN_SUCCESS:
                # the model's figure for learners like this one, beside the step's own expected
                # success (which also weighs what this learner knows), each named as what it is
                reasons.append(
                    renderer.reason(ReasonCode.SIMILAR_LEARNERS_SUCCEEDED, f"{success:.2f}", f"{similar:.2f}")
                )
        key = (j, x.options.languages)
        language = self.language.get(key)
        if language is None:
            language = self.language[key] = _language_of(
                view.primary_languages[j], module.languages, x.options.languages
            )
        reasons.append(renderer.reason(ReasonCode.LANGUAGE_MATCH, language))
        return PathStep(
            position=position,
            module_id=module.module_id,
            score=score,
            expected_success=success,
            gains=tuple(SkillGain(catalog.skill_ids[s], b, a) for s, b, a in zip(skills, before, after, strict=True)),
            estimated_minutes=module.estimated_minutes,
            review=review,
            reasons=tuple(reasons),
        )

    def _target(self, skill: int) -> float:
        """The mastery a skill must reach: its requirement's target, else a prerequisite's."""
        r = self.requirement_of[skill]
        return self.levels[r] if r < len(self.levels) else self.threshold

    def needs_support(
        self, x: PlanInput, renderer: Renderer, mastery: FloatArray, failed: list[int]
    ) -> tuple[Reason, ...]:
        """NEEDS_SUPPORT per view module failed out: its weakest skill, and how often it was taken."""
        view, out = self.ra.view, []
        for j in failed:
            skills = view.skill_lists[j]
            weakest = min(skills, key=lambda s: (mastery.item(s), s))
            module_id = view.module_ids[j]
            out.append(renderer.reason(ReasonCode.NEEDS_SUPPORT, module_id, str(x.state.studied.get(module_id, 0)),
                                       self.catalog.skill_ids[weakest]))  # fmt: skip
        return tuple(out)


def _skill_check(
    catalog: Catalog, state: LearnerState, options: PlanOptions, ra: _RoleArrays, renderer: Renderer
) -> PathStep | None:
    """A first step that assesses skills instead of teaching them, when one is due: a skill the
    role needs, or that a module on the way to it teaches, studied `check_after_studies` times
    since its last item result and still estimated below its target. A module score is weak
    evidence about one skill (it mixes the learner's general ability and the module's other
    skills), so for some learners the estimate stalls while the skill is learned, and more study
    of it is wasted; an item-level check settles it. The check covers every such skill below its
    target studied since its last check, so one check answers them together."""
    if options.check_after_studies <= 0 or state.studies_since_check is None:
        return None
    skills, targets = ra.check_skills, ra.check_targets
    studies = state.studies_since_check[skills]
    below = state.mastery[skills] < targets
    if not (below & (studies >= options.check_after_studies)).any():
        return None
    checked = np.flatnonzero(below & (studies >= 1)).tolist()
    minutes = CHECK_MINUTES_PER_SKILL * len(checked)
    if 0 < options.time_budget_minutes < minutes:
        return None
    skill_ids = tuple(catalog.skill_ids[int(skills[c])] for c in checked)
    reasons: list[Reason] = []
    for c, skill_id in zip(checked, skill_ids, strict=True):
        mastery, required = f"{state.mastery[skills[c]]:.2f}", f"{targets[c]:.2f}"
        reasons.append(renderer.reason(ReasonCode.CHECK_DUE, skill_id, str(int(studies[c])), mastery, required))
        if ra.requirement_of[skills[c]] < len(ra.req_idx):
            reasons.append(renderer.reason(ReasonCode.ROLE_REQUIRES, ra.role.role_id, skill_id))
    return PathStep(
        position=1,
        module_id="",
        score=0.0,
        expected_success=float(state.mastery[skills[checked]].mean()),  # P(passing): the estimate
        gains=(),
        estimated_minutes=minutes,
        review=False,
        reasons=tuple(reasons),
        kind=StepKind.SKILL_CHECK,
        check_skill_ids=skill_ids,
    )


def _confirm_first(
    catalog: Catalog, ra: _RoleArrays, x: PlanInput, renderer: Renderer, steps: list[PathStep], implied: list[int]
) -> list[PathStep] | None:
    """The path with a check first of the skills of the first module's prerequisites that only
    implication shows mastered (no result of the learner's own on them): a belief, confirmed for a
    quarter of an hour before the learner builds on it. Later steps move down one; the path keeps
    its length limit and time budget."""
    view = ra.view
    module_id = steps[0].module_id
    skills = sorted({s for p in implied for s in view.skill_lists[p]})
    skill_ids = tuple(catalog.skill_ids[s] for s in skills)
    check = PathStep(
        position=1,
        module_id="",
        score=0.0,
        expected_success=float(np.mean([x.state.mastery[s] for s in skills])),
        gains=(),
        estimated_minutes=CHECK_MINUTES_PER_SKILL * len(skills),
        review=False,
        reasons=tuple(renderer.reason(ReasonCode.CONFIRM_PREREQUISITE, s, module_id) for s in skill_ids),
        kind=StepKind.SKILL_CHECK,
        check_skill_ids=skill_ids,
    )
    budget = x.options.time_budget_minutes
    if budget and check.estimated_minutes > budget:
        return None  # the check alone does not fit: the path goes without it
    path = [check, *(s._replace(position=s.position + 1) for s in steps)][: max(x.options.max_steps, 1)]
    while budget and len(path) > 1 and sum(s.estimated_minutes for s in path) > budget:
        path.pop()
    return path


def _readiness_after(catalog: Catalog, ra: _RoleArrays, mastery: FloatArray, steps: Sequence[PathStep]) -> float:
    """Readiness once `steps` are done, from the mastery each projects for its skills."""
    projected = np.ones((1, len(catalog.skill_ids) + 1))
    projected[0, :-1] = mastery
    for step in steps:
        for gain in step.gains:
            projected[0, catalog.skill_index[gain.skill_id]] = gain.mastery_after
    return float(ra.readiness(projected)[0])


def _best_unlocked(view: ModuleView, j: int, satisfied: BoolArray, reachable: BoolArray) -> str | None:
    """The module j is a prerequisite of that teaches the most role skills (smallest id on ties),
    among those the learner can take: a module they cannot take is no reason to study j."""
    best: tuple[float, str] | None = None
    for k in view.dependents[j]:
        if satisfied[k] or not reachable[k]:
            continue
        relevance = float(view.role_relevance[k])
        if best is None or relevance > best[0]:
            best = (relevance, view.module_ids[k])
    return best[1] if best else None


def _language_of(taught: frozenset[str], module_languages: tuple[str, ...], preferred: tuple[str, ...]) -> str:
    for lang in preferred:
        if primary_language(lang) in taught:
            return primary_language(lang)
    return module_languages[0]


def _reachable(ra: _RoleArrays, allowed: BoolArray, mastered: BoolArray) -> BoolArray:
    """(learners, view modules): the modules each learner can take under their constraints, now
    or later: allowed, with every prerequisite mastered or itself reachable."""
    view = ra.view
    n_view = len(view.module_ids)
    reachable = np.zeros_like(allowed)
    satisfied = np.ones((len(allowed), n_view + 1), dtype=bool)
    for _ in range(view.depth + 1):
        satisfied[:, :n_view] = mastered | reachable
        grown = allowed & satisfied[:, view.prereq_pad].all(axis=2)
        if (grown == reachable).all():
            break
        reachable = grown
    return reachable


def _unreachable_skills(
    catalog: Catalog, ra: _RoleArrays, reachable: BoolArray, mastery: FloatArray
) -> list[tuple[str, ...]]:
    """Per learner: role skills still below level that no module reachable under the constraints
    teaches (_reachable)."""
    taught = (reachable[:, :, None] & (ra.view.teaches_role[None] > 0)).any(axis=1)
    missing = (mastery[:, ra.req_idx] < ra.level) & ~taught
    return [tuple(catalog.skill_ids[ra.req_idx[r]] for r in np.flatnonzero(row).tolist()) for row in missing]


def _reachable_behind_teaches(view: ModuleView, reachable: BoolArray) -> FloatArray:
    """(learners, view modules, role requirements): view.behind_teaches counting only the later
    modules each learner can take, so a module is never valued for unlocking one they cannot.
    Computed once per distinct row of `reachable`, so a learner's values do not depend on who else
    is in the batch; a learner who can take every module gets view.behind_teaches itself."""
    out = np.empty((len(reachable), *view.behind_teaches.shape))
    rows: dict[bytes, FloatArray] = {}
    for b, row in enumerate(reachable):
        key = row.tobytes()
        found = rows.get(key)
        if found is None:
            found = rows[key] = view.behind_teaches if row.all() else (view.behind * row) @ view.teaches_role
        out[b] = found
    return out


def _out_of_reach(
    arrays: CatalogArrays,
    ra: _RoleArrays,
    x: PlanInput,
    renderer: Renderer,
    allowed: BoolArray,
    reachable: BoolArray,
    mastered: BoolArray,
    skill_ids: tuple[str, ...],
) -> tuple[Reason, ...]:
    """One path-level reason per role skill out of reach (rows of one learner over the view): what
    blocks the module teaching it that is closest to reach (fewest modules in its way the learner
    cannot take): the module's languages, its HSK level, an exclusion, or no module at all."""
    catalog, view = arrays.catalog, ra.view
    n_view = len(view.module_ids)
    blocked: dict[int, frozenset[int]] = {}

    def blocking(j: int) -> frozenset[int]:
        """The modules in j's way (j or its missing prerequisites, transitively) the learner cannot take."""
        found = blocked.get(j)
        if found is None:
            if reachable[j]:
                found = frozenset()
            elif not allowed[j]:
                found = frozenset({j})
            else:
                found = frozenset().union(
                    *(
                        blocking(p)
                        for p in view.prereq_pad[j].tolist()
                        if p < n_view and not (mastered[p] or reachable[p])
                    )
                )
            blocked[j] = found
        return found

    learner = x.state.learner
    reasons: list[Reason] = []
    for skill_id in skill_ids:
        s = catalog.skill_index[skill_id]
        teaching = [j for j in range(n_view) if s in view.skill_lists[j]]
        if not teaching:
            reasons.append(renderer.reason(ReasonCode.NOT_IN_CATALOG, skill_id))
            continue
        closest = min(teaching, key=lambda j: (len(blocking(j)), view.module_ids[j]))
        way = blocking(closest)
        q = closest if closest in way else min(way, key=lambda k: view.module_ids[k])
        module = catalog.modules[view.module_ids[q]]
        taught = [primary_language(t) for t in module.languages]
        speaks = {primary_language(t) for t in x.options.languages}
        if module.module_id in x.options.exclude_module_ids:
            reasons.append(renderer.reason(ReasonCode.MODULE_EXCLUDED, skill_id, module.module_id))
        elif "zh" in taught and "zh" in speaks and learner.chinese_level < module.min_chinese_level:
            reasons.append(renderer.reason(ReasonCode.CHINESE_LEVEL_BLOCKED, skill_id, module.module_id,
                                           str(module.min_chinese_level), str(learner.chinese_level)))  # fmt: skip
        else:
            reasons.append(renderer.reason(ReasonCode.LANGUAGE_BLOCKED, skill_id, module.module_id, ";".join(taught)))
    return tuple(reasons)


def _blocking_constraint(
    arrays: CatalogArrays,
    state: LearnerState,
    options: PlanOptions,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
) -> str:
    """Name what stops every module that would close the role gap (whole catalog; failures only)."""
    catalog = arrays.catalog
    excluded = np.array([m in options.exclude_module_ids for m in catalog.module_ids], dtype=bool)
    language_ok = arrays.language_mask(options.languages, state.learner.chinese_level)
    gap_skills = [catalog.skill_ids[s] for s, lv in zip(req_idx, level, strict=True) if state.mastery[s] < lv]
    teaching = np.asarray(arrays.teaches[:, [catalog.skill_index[s] for s in gap_skills]].sum(axis=1)).ravel() > 0
    langs = ", ".join(options.languages) or "none"
    if not teaching.any():
        return f"no module in the catalog teaches the role's missing skills {gap_skills}"
    if not (teaching & arrays.language_mask(options.languages, 99)).any():
        return f"no module teaching {gap_skills} is taught in the learner's languages ({langs})"
    if not (teaching & language_ok).any():
        need = int(arrays.min_chinese_level[teaching & arrays.language_mask(options.languages, 99)].min())
        return (
            f"the modules teaching {gap_skills} in ({langs}) are taught only in Chinese and need HSK {need}; "
            f"the learner has HSK {state.learner.chinese_level}"
        )
    if not (teaching & language_ok & ~excluded).any():
        return f"every module teaching {gap_skills} in the learner's languages is excluded by the request"
    if options.time_budget_minutes > 0:
        return f"no eligible module fits the time budget of {options.time_budget_minutes} minutes"
    return (
        f"the modules teaching {gap_skills} need prerequisites the learner cannot take "
        f"in ({langs}) at HSK {state.learner.chinese_level}"
    )
