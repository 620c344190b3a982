"""plan_path(): one learner's ordered next modules; plan_paths(): many learners' at once. Pure and
deterministic (ties go to the smaller module id), vectorized over modules and learners so a step
costs a few numpy operations for a whole batch. The step loop runs compiled by default
(kernel.py); _reference_steps, the numpy loop, is its specification and gives the same paths.

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

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from recommender.domain.catalog import MAX_HSK_LEVEL, Catalog, TargetRole
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, PathStep, Reason, ReasonCode, SkillGain, StepKind, StopReason
from recommender.errors import PreconditionFailed
from recommender.planner.arrays import NEVER, CatalogArrays, ModuleView, SkillParamArrays, primary_language
from recommender.planner.reasons import Renderer

if TYPE_CHECKING:
    from recommender.planner.kernel import RoleInputs

_new = tuple.__new__
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
    # the mastery fed in is a level itself, not a probability (a simulator's oracle fed the truth):
    # a requirement is then met at its level, and a prerequisite at mastery_confidence read as a level
    mastery_is_level: bool = False
    # studies (module results) after which a role skill still below its target gets a skill check
    # first; 0 never plans one
    check_after_studies: int = 3
    # module assessments after which a module still not mastered is not planned again (0: no limit)
    max_module_attempts: int = 3
    # Chinese as a route: plan the Chinese ladder when the role needs modules taught only in Chinese
    # above the learner's level, and read the level from their results too. False: Chinese is only
    # a filter at the declared level (the language-blind baseline the simulator compares against)
    chinese_route: bool = True


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
    """The hybrid model's predicted success per module for this learner (catalog order), and how
    the planner blends it with knowledge tracing's in logit space (the model's SuccessBlend)."""

    success: FloatArray
    version: str
    knowledge_weight: float = 0.5
    model_weight: float = 0.5
    intercept: float = 0.0


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
    *,
    kernel: bool = True,
) -> LearningPath:
    result = plan_paths(arrays, kt, [PlanInput(state, options, model)], now, kernel=kernel)[0]
    if isinstance(result, PreconditionFailed):
        raise result
    return result


def plan_paths(
    arrays: CatalogArrays, kt: SkillParamArrays, inputs: Sequence[PlanInput], now: datetime, *, kernel: bool = True
) -> list[LearningPath | PreconditionFailed]:
    """Paths for many learners, in input order; a learner no step can be planned for gets the
    PreconditionFailed naming the blocking constraint instead. Learners with the same role,
    thresholds and model presence are planned together, each step one set of numpy operations
    over all of them, so a cohort pays numpy's per-call cost once per step, not once per learner.

    A learner's path never depends on who else is in the batch: every operation is elementwise or
    sums along the learner's own rows of a C-ordered array, so batch and single-learner planning
    agree bit for bit (tested). Hence no BLAS products (their rounding depends on the matrix
    shapes), and gathers along axis 1 use np.take: m[:, idx] is column-major, and numpy sums the
    rows of a column-major array in another order than a single row (pairwise from 8 terms).

    kernel: run the step loop compiled (kernel.py) when Numba is importable; False runs the numpy
    reference (_reference_steps). Both give the same paths (tested)."""
    results: dict[int, LearningPath | PreconditionFailed] = {}
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        o = x.options
        # learners under different blends (models) never share a batch: _model_terms takes one
        blend = None if x.model is None else (x.model.knowledge_weight, x.model.model_weight, x.model.intercept)
        key = (o.target_role_id, o.mastery_confidence, o.mastery_is_level, o.max_module_attempts, o.chinese_route,
               blend)  # fmt: skip
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        for start in range(0, len(members), BATCH):
            part = members[start : start + BATCH]
            planned = _plan_batch(arrays, kt, [inputs[i] for i in part], now, kernel)
            for i, result in zip(part, planned, strict=True):
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
    n_taught: npt.NDArray[np.intp]  # skills each view module teaches: its leading skill_pad slots
    # view modules mastered only by evidence at their own level (ModuleView.builds_on_own_skill),
    # none when the mastery planned on is a level (exact, as the oracle's is)
    gated: BoolArray
    catalog: Catalog

    @classmethod
    def of(
        cls, arrays: CatalogArrays, kt: SkillParamArrays, role: TargetRole, confidence: float, levels: bool
    ) -> _RoleArrays:
        """Built once per role, targets and BKT parameters, then kept with the catalog arrays."""
        key = ("role-arrays", role.role_id, confidence, levels)
        found = arrays.derived.get(key)
        if isinstance(found, _RoleArrays) and found.kt is kt and found.role is role:
            return found
        built = cls.build(arrays, kt, role, confidence, levels)
        arrays.derived[key] = built
        return built

    @classmethod
    def build(
        cls, arrays: CatalogArrays, kt: SkillParamArrays, role: TargetRole, confidence: float, levels: bool
    ) -> _RoleArrays:
        catalog = arrays.catalog
        view = arrays.role_view(role.role_id)
        n_skills = len(catalog.skill_ids)
        req_idx = np.array([catalog.skill_index[r.skill_id] for r in role.requirements], dtype=np.intp)
        level = requirement_targets(role, confidence, levels)
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
            n_taught=np.array([len(s) for s in view.skill_lists], dtype=np.intp),
            gated=np.zeros(len(view.module_ids), dtype=bool) if levels else view.builds_on_own_skill,
            catalog=catalog,
        )

    @functools.cached_property
    def modules_info(self) -> list[tuple[str, int, tuple[int, ...], tuple[str, ...], tuple[int, ...]]]:
        """Per view module, what a step placing it reports that no learner changes: its id, minutes,
        skills (indexes and ids) and the requirement each skill meets (len(req_idx): none)."""
        catalog, view = self.catalog, self.view
        requirement_of = self.requirement_of.tolist()
        return [
            (module_id, catalog.modules[module_id].estimated_minutes, skills,
             tuple(catalog.skill_ids[s] for s in skills), tuple(requirement_of[s] for s in skills))
            for module_id, skills in zip(view.module_ids, view.skill_lists, strict=True)
        ]  # fmt: skip

    @functools.cached_property
    def dependents_info(self) -> list[tuple[tuple[int, float, str], ...]]:
        """Per view module, its dependents in view order with their role relevance and id."""
        view = self.view
        relevance = view.role_relevance.tolist()
        return [tuple((k, float(relevance[k]), view.module_ids[k]) for k in d) for d in view.dependents]

    @functools.cached_property
    def unlock_order(self) -> tuple[list[bool], list[int]]:
        """Per view module, what ranks it as the module a Chinese route step leads to, but for the
        HSK level it needs (_ChineseRoute.unlocked): whether it is irrelevant to the role, and its
        rank by what it teaches and leads to toward the role (most first), then by id."""
        view = self.view
        worth = (view.role_relevance + view.behind_teaches.sum(axis=1)).tolist()
        order = sorted(range(len(view.module_ids)), key=lambda k: (-worth[k], view.module_ids[k]))
        rank = [0] * len(order)
        for position, k in enumerate(order):
            rank[k] = position
        return (view.role_relevance <= 0).tolist(), rank

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


def requirement_targets(role: TargetRole, confidence: float, mastery_is_level: bool = False) -> FloatArray:
    """The mastery at which each of the role's requirements counts as met (PlanOptions): the one
    mastery confidence, whatever the level (the level is what the platform's checks are pitched
    at, not how sure the service must be); when the mastery is a level, the level itself."""
    required = np.array([r.level for r in role.requirements], dtype=np.float64)
    if not mastery_is_level:
        return np.full(len(required), confidence)
    return required


def _success(
    content: FloatArray, content_shift: FloatArray, model_term: FloatArray | None, knowledge_weight: float
) -> FloatArray:
    """P(success) of studying each module: BKT's prediction (content) shifted by difficulty,
    blended in logit space with the hybrid model's prediction when one is active (`model_term`:
    the model's weighted logit plus the blend's intercept, _model_terms)."""
    logit = np.log(content / (1.0 - content)) + content_shift
    if model_term is not None:
        logit = knowledge_weight * logit + model_term
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def _model_terms(inputs: Sequence[PlanInput], modules: npt.NDArray[np.intp]) -> tuple[FloatArray | None, float]:
    """(the model's part of each learner's success logit on the view's modules, the weight of
    knowledge tracing's part): plan_paths batches learners under one blend only."""
    first = inputs[0].model
    if first is None:
        return None, 1.0
    p = np.clip(np.stack([x.model.success[modules] for x in inputs if x.model is not None]), 1e-4, 1 - 1e-4)
    return first.model_weight * np.log(p / (1.0 - p)) + first.intercept, first.knowledge_weight


def _score(value: FloatArray, success: FloatArray, hours_penalty: FloatArray) -> FloatArray:
    """A step's score: its value, weighed by how close its success is to TARGET_SUCCESS (the zone
    of proximal development), per hour of study."""
    zpd = np.exp(-(((success - TARGET_SUCCESS) / ZPD_WIDTH) ** 2))
    return np.asarray(value * (ZPD_FLOOR + (1.0 - ZPD_FLOOR) * zpd) * hours_penalty, dtype=np.float64)


def _plan_batch(
    arrays: CatalogArrays, kt: SkillParamArrays, inputs: Sequence[PlanInput], now: datetime, kernel: bool
) -> list[LearningPath | PreconditionFailed]:
    """Learners with the same role, thresholds and model presence, planned step by step together:
    where each learner stands, the steps, a check before a path builds on an implied
    prerequisite, then each learner's path."""
    start = _BatchStart.of(arrays, kt, inputs)
    out = _walk(arrays, start, inputs, kernel)
    for row, first_module in enumerate(out.first_study.tolist()):
        if first_module >= 0:
            _confirm_implied_prerequisites(arrays.catalog, start, inputs[row], row, first_module, out)
    return [_path_of(arrays, start, learner, row, out, now) for row, learner in enumerate(inputs)]


@dataclass
class _BatchStart:
    """Where each learner of a batch stands before the first step (arrays are (learners, ...))."""

    ra: _RoleArrays
    threshold: float  # the mastery confidence
    mastery: FloatArray  # (learners, skills + sentinel): projected along the path by the step loop
    gate: IntArray  # the HSK level each view module needs (see _gates)
    level_now: IntArray  # each learner's HSK level now: declared, or shown by the Chinese ladder
    allowed: BoolArray  # view modules the learner can take (now, or on the Chinese route)
    reachable: BoolArray  # view modules reachable through modules the learner can take
    mastered_now: BoolArray  # view modules mastered, or implied mastered
    implied_only: BoolArray  # view modules only implied mastered (no result on their skills)
    failed_out: BoolArray  # view modules failed max_module_attempts times
    readiness_now: FloatArray
    unreachable: list[tuple[str, ...]]  # role skills out of reach, per learner
    review_due: BoolArray  # role requirements met at their peak and forgotten since
    model_logit: FloatArray | None  # the model's part of the success logit (_model_terms)
    knowledge_weight: float  # knowledge tracing's weight in the success logit
    renderers: list[Renderer]
    route: _ChineseRoute | None
    explain: _Explainer

    @classmethod
    def of(cls, arrays: CatalogArrays, kt: SkillParamArrays, inputs: Sequence[PlanInput]) -> _BatchStart:
        catalog = arrays.catalog
        first = inputs[0].options
        role = catalog.roles[first.target_role_id]
        ra = _RoleArrays.of(arrays, kt, role, first.mastery_confidence, first.mastery_is_level)
        view = ra.view
        size, n_skills, n_view = len(inputs), len(catalog.skill_ids), len(view.module_ids)
        threshold = first.mastery_confidence
        pad = view.skill_pad

        mastery = np.ones((size, n_skills + 1))  # the last column is the sentinel skill
        mastery[:, :n_skills] = np.stack([x.state.mastery for x in inputs])
        gate, excluded = _gates(arrays, view, inputs)
        # each learner's HSK level now: declared, or shown by a mastered module of the Chinese ladder
        declared = np.array([x.state.learner.chinese_level for x in inputs], dtype=np.int64)
        level_now = declared
        if first.chinese_route:
            level_now = np.maximum(declared, arrays.shown_chinese_level(mastery, threshold))
        allowed = (gate <= level_now[:, None]) & ~excluded
        attempts = np.zeros((size, n_view), dtype=np.int64)
        for row, x in enumerate(inputs):
            for module_id, count in x.state.studied.items():
                if module_id in view.position:
                    attempts[row, view.position[module_id]] = count
        # a module mastered now or, when the learner has no result on any of its skills, implied
        # mastered by a mastered module it lies behind (direct evidence always rules)
        m_pad_now = np.take(mastery, pad, axis=1)  # C-ordered, so sums do not depend on the batch
        mastered = ra.mastered(m_pad_now, threshold)
        # evidence below a module's level does not show it mastered: a module building on an
        # earlier one that teaches the same skill, never studied itself, whose shared skills were
        # last evidenced by module results (the earlier module's, not a check), is not mastered
        # unless a module built on it is (see _evidenced_below)
        below = _evidenced_below(ra, inputs, attempts) if ra.gated.any() else None
        direct = mastered & ~below if below is not None else mastered
        implied = ra.implied(direct)
        practiced = np.zeros((size, n_skills + 1), dtype=bool)
        practiced[:, :n_skills] = ~np.isnan(np.stack([x.state.days_since_practice for x in inputs]))
        # nor to modules teaching a role skill still short of its target: readiness needs them taught
        role_short = ((ra.pad_req < len(ra.req_idx)) & (m_pad_now < ra.pad_level)).any(axis=2)
        implied_only = implied & ~mastered & ~np.take(practiced, pad, axis=1).any(axis=2) & ~role_short
        mastered_now = direct | implied_only
        if below is not None:
            mastered_now |= mastered & implied
        failed_out = np.zeros_like(allowed)
        if first.max_module_attempts > 0:
            # not a module the learner mastered when last practised and has since forgotten: a review
            peaks = np.ones((size, n_skills + 1))
            peaks[:, :n_skills] = np.stack([x.state.peak for x in inputs])
            was_mastered = ra.mastered(np.take(peaks, pad, axis=1), threshold)
            failed_out = (attempts >= first.max_module_attempts) & ~mastered_now & ~was_mastered
        readiness_now = ra.readiness(mastery)
        reachable = _reachable(ra, allowed, mastered_now)
        route = None
        if first.chinese_route:
            route = _chinese_route(ra, gate, excluded, level_now, mastered_now, reachable, mastery)
            if route is not None:
                allowed, reachable = route.allowed, route.reachable
        unreachable = _unreachable_skills(catalog, ra, reachable, mastery)
        peak = np.stack([x.state.peak[ra.req_idx] for x in inputs])
        review_due = (peak >= ra.level) & (mastery[:, ra.req_idx] < ra.level)
        model_logit, knowledge_weight = _model_terms(inputs, view.modules)
        renderers = [arrays.renderer(x.options.locale) for x in inputs]
        explain = _Explainer(catalog, ra, threshold, {id(x): reachable[row] for row, x in enumerate(inputs)}, route)
        return cls(ra, threshold, mastery, gate, level_now, allowed, reachable, mastered_now, implied_only,
                   failed_out, readiness_now, unreachable, review_due, model_logit, knowledge_weight, renderers,
                   route, explain)  # fmt: skip


def _evidenced_below(ra: _RoleArrays, inputs: Sequence[PlanInput], attempts: IntArray) -> BoolArray:
    """(learners, view modules): gated modules never studied whose skills shared with an earlier
    module were last evidenced by module results. The catalog's levels of one skill (101, 201,
    301) share it, and knowledge tracing keeps one mastery per skill: passing the 101 module
    shows the skill at the 101 level, not the 201 module's. A check or placement item after
    those studies (studies_since_check back to 0) assesses the skill itself and does count."""
    n_skills = len(ra.kt.prior)
    studies = np.zeros((len(inputs), n_skills + 1), dtype=np.int64)
    for row, x in enumerate(inputs):
        if x.state.studies_since_check is not None:
            studies[row, :n_skills] = x.state.studies_since_check
    studied_since = np.take(studies, ra.view.skill_pad, axis=1) > 0
    below = (studied_since & ra.view.pad_taught_before).any(axis=2)
    return np.asarray(below & ra.gated & (attempts == 0))


def _walk(arrays: CatalogArrays, start: _BatchStart, inputs: Sequence[PlanInput], kernel: bool) -> _Out:
    """The steps of every learner of the batch: a skill check first where one is due, then the
    step loop, compiled where it can be and the numpy reference otherwise."""
    catalog, ra = arrays.catalog, start.ra
    view = ra.view
    size, n_view = len(inputs), len(view.module_ids)
    steps: list[list[PathStep]] = [[] for _ in inputs]
    minutes_used = np.zeros(size)
    for row, x in enumerate(inputs):
        check = _skill_check(catalog, x.state, x.options, ra, start.renderers[row])
        if check is not None:
            steps[row].append(check)
            minutes_used[row] += check.estimated_minutes
    # what each module unlocks toward the role is behind @ (need taught by each unplaced module);
    # as need is per requirement, that is (behind @ teaches_role, less the placed modules' rows) @
    # need. The first factor is kept per learner (a last column, never needed, takes the updates
    # of skills the role does not require); a step then computes it only for the modules where
    # it counts (eligible, not yet mastered) and updates only the columns of the placed module's
    # skills, so a step costs O(modules x skills per module), not O(modules x requirements).
    n_req = len(ra.req_idx)
    behind_unplaced = np.zeros((size, n_view, n_req + 1))
    behind_unplaced[:, :, :n_req] = _reachable_behind_teaches(view, start.reachable)
    route = start.route
    work = _Work(
        ids=np.arange(size),
        mastery=start.mastery,
        placed=np.zeros((size, n_view), dtype=bool),
        implied=start.mastered_now,
        allowed=start.allowed,
        flagged=start.failed_out if start.failed_out.any() else None,
        model_logit=start.model_logit,
        behind_unplaced=behind_unplaced,
        minutes_used=minutes_used,
        taken=np.array([len(s) for s in steps]),
        max_steps=np.array([x.options.max_steps for x in inputs]),
        budget=np.array([x.options.time_budget_minutes for x in inputs], dtype=np.float64),
        level=start.level_now.copy(),
        gate=start.gate if route is not None else None,
        route=route.modules if route is not None else None,
        opened=route.opened if route is not None else None,
        knowledge_weight=start.knowledge_weight,
    )
    out = _Out(steps, [StopReason.MAX_STEPS] * size, np.full(size, -1), [[] for _ in inputs], np.zeros(size))
    left: _Work | None = work
    if kernel and _kernel_available():
        left = _compiled_steps(arrays, ra, start.explain, inputs, start.renderers, start.review_due, work, out)
    if left is not None:
        _reference_steps(ra, start.explain, inputs, start.renderers, start.review_due, left, out)
    return out


def _confirm_implied_prerequisites(
    catalog: Catalog, start: _BatchStart, learner: PlanInput, row: int, first_module: int, out: _Out
) -> None:
    """A path whose first study builds on a prerequisite only implied mastered starts with a
    short check of it (_confirm_first); a step that gives way to the check ends the path earlier."""
    ra = start.ra
    view = ra.view
    n_view = len(view.module_ids)
    implied_first = [p for p in view.prereq_pad[first_module].tolist() if p < n_view and start.implied_only[row, p]]
    if not implied_first:
        return
    steps = out.steps[row]
    confirmed = _confirm_first(catalog, ra, learner, start.renderers[row], steps, implied_first)
    if confirmed is None:
        return
    kept = confirmed[1:]
    if len(kept) < len(steps):  # a step gave way to the check: the path ends earlier
        on_path = {s.module_id for s in kept}
        out.supported[row] = [k for k in out.supported[row] if view.module_ids[k] in on_path]
        budget = learner.options.time_budget_minutes
        over = budget > 0 and sum(s.estimated_minutes for s in confirmed) + steps[len(kept)].estimated_minutes > budget
        out.stops[row] = StopReason.TIME_BUDGET if over else StopReason.MAX_STEPS
        out.readiness_after[row] = _readiness_after(catalog, ra, learner.state.mastery, kept)
    out.steps[row] = confirmed


def _path_of(
    arrays: CatalogArrays, start: _BatchStart, learner: PlanInput, row: int, out: _Out, now: datetime
) -> LearningPath | PreconditionFailed:
    """One learner's path from the batch's steps, with what blocks the role named first."""
    ra, renderer = start.ra, start.renderers[row]
    stop, unreachable, supported = out.stops[row], start.unreachable[row], out.supported[row]
    # the weakest skill as of now: `mastery` rows are projected along the path only while they
    # share the batch's array, so reading them here would depend on the batch
    blockers = start.explain.needs_support(learner, renderer, learner.state.mastery, supported) if supported else ()
    if stop is StopReason.ROLE_READY:
        # the path got there: a prerequisite no module in reach teaches became mastered through
        # another module teaching its skills, so nothing was out of reach after all
        unreachable = ()
    if unreachable:
        # the role is out of reach: say so first, and plan toward the reachable part
        out_of_reach = _out_of_reach(arrays, ra, learner, renderer, start.allowed[row], start.reachable[row],
                                     start.mastered_now[row], unreachable, start.gate[row],
                                     int(start.level_now[row]))  # fmt: skip
        blockers = out_of_reach + blockers
        if stop in (StopReason.MAX_STEPS, StopReason.NO_ELIGIBLE_MODULE):
            stop = StopReason.ROLE_OUT_OF_REACH
    # a learner who can follow some module of the catalog always gets a path, if only to say
    # what blocks the role; one who can follow none, or whose request leaves nothing, does not
    answered = stop is StopReason.ROLE_READY or (
        stop is StopReason.ROLE_OUT_OF_REACH and arrays.taught_mask(learner.options.languages).any()
    )
    steps = out.steps[row]
    if not steps and not answered:
        return PreconditionFailed(_blocking_constraint(arrays, learner.state, learner.options, ra.req_idx, ra.level),
                                  subject="path")  # fmt: skip
    return LearningPath(
        learner_id=learner.state.learner.learner_id,
        target_role_id=ra.role.role_id,
        steps=tuple(steps),
        readiness_now=float(start.readiness_now[row]),
        readiness_after=float(out.readiness_after[row]),
        stop_reason=stop,
        unreachable_skill_ids=unreachable,
        model_version=learner.model.version if learner.model else "",
        generated_at=now,
        blockers=blockers,
        locale=renderer.key,
    )


def _reference_steps(
    ra: _RoleArrays,
    explain: _Explainer,
    inputs: Sequence[PlanInput],
    renderers: Sequence[Renderer],
    review_due: BoolArray,
    work: _Work,
    out: _Out,
) -> None:
    """The step loop in numpy, all of `work`'s learners at once: the reference the compiled kernel
    (kernel.py) must agree with, bit for bit."""
    view, threshold = ra.view, explain.threshold
    pad, n_view, n_req = view.skill_pad, len(view.module_ids), len(ra.req_idx)
    steps, stops, first_study, supported, readiness_after = out
    size = len(work.ids)
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
        satisfied = (ra.mastered(m_pad, threshold) & ~ra.gated) | work.placed | work.implied
        sat_ext = satisfied_ext[:k]
        sat_ext[:, :n_view] = satisfied
        eligible = work.allowed & sat_ext[:, view.prereq_pad].all(axis=2) & ~work.placed
        if work.gate is not None:
            # the Chinese route: a module taught only in Chinese waits for the level the path reaches
            eligible &= work.gate <= work.level[:, None]
        # P(success) per module: BKT's prediction shifted by difficulty, blended in logit space
        # with the hybrid model's prediction when one is active
        known = (view.pad_share * m_pad).sum(axis=2)
        # np.minimum(np.maximum()) is np.clip, at a fraction of its per-call cost
        content = np.minimum(np.maximum(known * ra.module_right + (1.0 - known) * ra.module_guess, 1e-4), 1 - 1e-4)
        success = _success(content, ra.content_shift, work.model_logit, work.knowledge_weight)
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
        if work.route is not None and work.opened is not None:
            # a module of the Chinese route is worth what the route opens toward the role
            opens = (need[:, :n_req] * work.opened).sum(axis=1)
            value = value + UNLOCK_WEIGHT * opens[:, None] * work.route
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
            score = _score(value, success, ra.hours_penalty)
            choice = np.argmax(np.where(candidates, score, -np.inf), axis=1)  # first max = smallest id
            for i, j in zip(going.tolist(), choice[going].tolist(), strict=True):
                b = int(work.ids[i])
                if not steps[b]:
                    first_study[b] = j
                steps[b].append(
                    explain.step(inputs[b], renderers[b], len(steps[b]) + 1, work.mastery[i], j,
                                 projected[i, j].tolist(), score.item(i, j), success.item(i, j), unlock.item(i, j),
                                 satisfied[i], review_due[b], b, int(work.level[i]))
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
            if work.gate is not None:
                # a module of the Chinese ladder placed: later steps count the level it reaches
                work.level[going] = np.maximum(work.level[going], view.raises_chinese_level[chosen])
        if some_stuck:
            for b, over in zip(work.ids[stuck].tolist(), over_budget[stuck].tolist(), strict=True):
                stops[b] = StopReason.TIME_BUDGET if over else StopReason.NO_ELIGIBLE_MODULE
        if some_stuck or halted.any():
            work = finish(stuck | halted)


class _Out(NamedTuple):
    """What the step loop records per learner of a batch (steps holds any skill check already)."""

    steps: list[list[PathStep]]
    stops: list[StopReason]
    first_study: IntArray  # the view module a path starts with, when it starts with a study (else -1)
    supported: list[list[int]]  # failed-out modules retaken, with support
    readiness_after: FloatArray


def warm_kernel() -> bool:
    """Load the compiled step loop ahead of the first plan (kernel.warm); False where it cannot run."""
    if not _kernel_available():
        return False
    from recommender.planner import kernel

    kernel.warm()
    return True


def _kernel_available() -> bool:
    """Whether the compiled step loop can run here (Numba imports); if not, the reference plans."""
    try:
        from recommender.planner import kernel  # noqa: F401
    except ImportError:
        return False
    return True


def _compiled_steps(
    arrays: CatalogArrays,
    ra: _RoleArrays,
    explain: _Explainer,
    inputs: Sequence[PlanInput],
    renderers: Sequence[Renderer],
    review_due: BoolArray,
    work: _Work,
    out: _Out,
) -> _Work | None:
    """_reference_steps compiled (kernel.py), one learner at a time: the kernel chooses the steps
    and projects mastery; the expected success and score each step reports come from the
    reference's numpy expressions (_success, _score) on the kernel's inputs to them, as numpy's
    exp and log may differ from the compiled ones in the last bit. Returns the learners left to
    the reference (a near tie between different candidates decided one of their steps), their
    rows as planning began, or None."""
    from recommender.planner import kernel

    role = _kernel_inputs(arrays, ra, explain.threshold)
    flagged = work.flagged if work.flagged is not None else np.zeros_like(work.allowed)
    route = None
    if work.gate is not None and work.route is not None and work.opened is not None:
        c = np.ascontiguousarray
        route = (c(work.gate, dtype=np.int64), c(work.level, dtype=np.int64), c(work.route), c(work.opened))
    found = kernel.plan_steps(
        role, work.mastery, work.allowed, work.implied, flagged, work.model_logit, work.knowledge_weight,
        work.behind_unplaced, work.minutes_used, work.taken, work.max_steps, work.budget, route,
    )  # fmt: skip
    rows, cols = np.nonzero((np.arange(found.chosen.shape[1]) < found.n_steps[:, None]) & ~found.ambiguous[:, None])
    chosen = found.chosen[rows, cols]
    logit = None if work.model_logit is None else work.model_logit[rows, chosen]
    success = _success(found.content[rows, cols], ra.content_shift[chosen], logit, work.knowledge_weight)
    score = _score(found.value[rows, cols], success, ra.hours_penalty[chosen])
    mastery = work.mastery.copy()  # each row projected along its path as explain.step places steps
    # the per-step values as Python lists, read once each (a numpy scalar costs more to fetch)
    chosen_rows, unlock_rows, level_rows = found.chosen.tolist(), found.unlock.tolist(), found.level.tolist()
    projected_rows, scores, successes = found.projected.tolist(), score.tolist(), success.tolist()
    ambiguous, n_steps, stop_codes = found.ambiguous.tolist(), found.n_steps.tolist(), found.stop.tolist()
    n, step = 0, explain.step
    for i, b in enumerate(work.ids.tolist()):
        if ambiguous[i]:
            continue
        steps, row, chosen_row = out.steps[b], mastery[i], chosen_rows[i]
        unlocks, levels, projected, satisfied = unlock_rows[i], level_rows[i], projected_rows[i], found.satisfied[i]
        x, renderer, due = inputs[b], renderers[b], review_due[b]
        for t in range(n_steps[i]):
            j = chosen_row[t]
            if not steps:
                out.first_study[b] = j
            steps.append(
                step(x, renderer, len(steps) + 1, row, j, projected[t], scores[n], successes[n], unlocks[t],
                     satisfied[t], due, b, levels[t])
            )  # fmt: skip
            n += 1
        out.stops[b] = _KERNEL_STOPS[stop_codes[i]]
        if out.stops[b] is StopReason.REPEATED_FAILURE:
            out.supported[b].append(chosen_row[n_steps[i] - 1])
        out.readiness_after[b] = found.readiness_after[i]
    return work.keep(found.ambiguous) if found.ambiguous.any() else None


_KERNEL_STOPS = (
    StopReason.MAX_STEPS,
    StopReason.ROLE_READY,
    StopReason.TIME_BUDGET,
    StopReason.NO_ELIGIBLE_MODULE,
    StopReason.REPEATED_FAILURE,
)


def _kernel_inputs(arrays: CatalogArrays, ra: _RoleArrays, threshold: float) -> RoleInputs:
    """The role's arrays as the kernel takes them (C-ordered, its dtypes), kept beside ra."""
    from recommender.planner.kernel import TIE_TOLERANCE, RoleInputs

    key = ("kernel-inputs", ra.role.role_id, threshold, id(ra))
    found = arrays.derived.get(key)
    if isinstance(found, tuple) and found[0] is ra and isinstance(found[1], RoleInputs):
        return found[1]
    view = ra.view

    def c(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.ascontiguousarray(a)

    built = RoleInputs(
        skill_pad=c(view.skill_pad.astype(np.intp)),
        n_taught=c(ra.n_taught),
        pad_share=c(view.pad_share),
        pad_weights=c(view.pad_weights),
        pad_req=c(ra.pad_req.astype(np.intp)),
        pad_level=c(ra.pad_level),
        pad_weight=c(ra.pad_weight),
        learn=c(ra.bkt.learn),
        keep=c(ra.bkt.keep),
        module_right=c(ra.module_right),
        module_guess=c(ra.module_guess),
        content_shift=c(ra.content_shift),
        hours_penalty=c(ra.hours_penalty),
        prereq_pad=c(view.prereq_pad.astype(np.intp)),
        minutes=c(view.minutes),
        behind=c(view.behind),
        req_idx=c(ra.req_idx.astype(np.intp)),
        level=c(ra.level),
        weight=c(ra.weight),
        gated=c(ra.gated),
        raises=c(view.raises_chinese_level.astype(np.int64)),
        consts=np.array([threshold, EPS, UNLOCK_WEIGHT, TARGET_SUCCESS, ZPD_WIDTH, ZPD_FLOOR, TIE_TOLERANCE]),
    )
    arrays.derived[key] = (ra, built)
    return built


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
    level: IntArray  # the HSK level each learner has reached along their path
    # the Chinese route, when some learner of the batch takes one (_ChineseRoute); None: no gate
    gate: IntArray | None  # (learners, view modules) the HSK level each module needs
    route: BoolArray | None  # (learners, view modules) the route's modules
    opened: FloatArray | None  # (learners, requirements) 1 where the route opens the requirement
    knowledge_weight: float  # knowledge tracing's weight in the success logit (_model_terms)

    def keep(self, rows: BoolArray) -> _Work:
        logit = None if self.model_logit is None else self.model_logit[rows]
        flagged = None if self.flagged is None else self.flagged[rows]
        gate = None if self.gate is None else self.gate[rows]
        route = None if self.route is None else self.route[rows]
        opened = None if self.opened is None else self.opened[rows]
        return _Work(self.ids[rows], self.mastery[rows], self.placed[rows], self.implied[rows], self.allowed[rows],
                     flagged,
                     logit, self.behind_unplaced[rows], self.minutes_used[rows], self.taken[rows],
                     self.max_steps[rows], self.budget[rows], self.level[rows], gate, route, opened,
                     self.knowledge_weight)  # fmt: skip


def _gates(arrays: CatalogArrays, view: ModuleView, inputs: Sequence[PlanInput]) -> tuple[IntArray, BoolArray]:
    """(learners, view modules) twice: the HSK level at which each learner can follow each module
    (CatalogArrays.chinese_gate), and the modules the request excludes."""
    gate = np.empty((len(inputs), len(view.module_ids)), dtype=np.int64)
    excluded = np.zeros((len(inputs), len(view.module_ids)), dtype=bool)
    for b, x in enumerate(inputs):
        gate[b] = arrays.chinese_gate(x.options.languages)[view.modules]
        for module_id in x.options.exclude_module_ids:
            if module_id in view.position:
                excluded[b, view.position[module_id]] = True
    return gate, excluded


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
    route: _ChineseRoute | None = None  # the batch's Chinese routes, if any learner takes one
    levels: list[float] = field(init=False)
    requirement_of: list[int] = field(init=False)

    level_texts: list[str] = field(init=False)
    module_languages: list[tuple[str, ...]] = field(init=False)  # per view module, as the catalog lists them

    def __post_init__(self) -> None:
        self.levels = self.ra.level.tolist()
        self.level_texts = [f"{v:.2f}" for v in self.levels]
        self.requirement_of = self.ra.requirement_of.tolist()
        self.module_languages = [self.catalog.modules[m].languages for m in self.ra.view.module_ids]

    def step(
        self,
        x: PlanInput,
        renderer: Renderer,
        position: int,
        mastery: FloatArray,
        j: int,
        projected: Sequence[float],
        score: float,
        success: float,
        unlock: float,
        satisfied: BoolArray,
        review_due: BoolArray,
        row: int,
        chinese_level: int,
    ) -> PathStep:
        """Place view module j, whose skills' projected mastery (padded) the step loop computed, for
        the batch's learner `row`, at `chinese_level` before the step."""
        levels, ra = self.levels, self.ra
        module_id, minutes, skills, skill_ids, requirements = ra.modules_info[j]
        n = len(skills)
        if n == 1:  # most modules teach one skill: no loops, no sort
            before = [mastery.item(skills[0])]
            after = [projected[0]]
            mastery[skills[0]] = after[0]
        else:
            before = [mastery.item(s) for s in skills]
            after = list(projected[:n])
            for s, a in zip(skills, after, strict=True):
                mastery[s] = a

        reason = renderer.reason
        reasons: list[Reason] = []
        route = self.route
        if route is not None and route.modules.item(row, j):
            k = route.unlocked(ra, row, chinese_level)
            if k is not None:
                needed, now = str(route.gate.item(row, k)), str(chinese_level)
                reasons.append(reason(ReasonCode.LANGUAGE_UNLOCK, ra.view.module_ids[k], needed, now))
        review = False
        attempts = x.state.studied.get(module_id, 0) if x.state.studied else 0
        if attempts:
            weakest = min(range(n), key=lambda i: (before[i], i))
            target = f"{self._target(skills[weakest]):.2f}"
            reasons.append(reason(ReasonCode.REMEDIATE, module_id, str(attempts), skill_ids[weakest],
                                  f"{before[weakest]:.2f}", target))  # fmt: skip
        # the role's skills this module teaches that are still short of their level, in role order
        if n == 1:
            r, b = requirements[0], before[0]
            gaps: Sequence[tuple[int, int, float]] = [(r, 0, b)] if r < len(levels) and b < levels[r] else ()
        else:
            gaps = [
                (r, i, b)
                for i, (r, b) in enumerate(zip(requirements, before, strict=True))
                if r < len(levels) and b < levels[r]
            ]
            if len(gaps) > 1:
                gaps.sort(key=lambda g: (g[0], skills[g[1]], g[2]))
        for r, i, b in gaps:
            skill_id = skill_ids[i]
            if review_due[r]:
                review = True
                days = x.state.days_since_practice[skills[i]]
                reasons.append(reason(ReasonCode.REVIEW_DUE, skill_id, f"{days:.0f}"))
            reasons.append(reason(ReasonCode.SKILL_GAP, skill_id, f"{b:.2f}", self.level_texts[r]))
            reasons.append(reason(ReasonCode.ROLE_REQUIRES, ra.role.role_id, skill_id))
        if unlock > EPS and not satisfied.item(j):
            unlocked = _best_unlocked(ra, j, satisfied, self.reachable[id(x)])
            if unlocked is not None:
                reasons.append(reason(ReasonCode.PREREQUISITE_FOR, unlocked))
        if x.model is not None:
            similar = x.model.success.item(ra.view.modules.item(j))
            if similar >= SIMILAR_LEARNERS_MIN_SUCCESS:
                # the model's figure for learners like this one, beside the step's own expected
                # success (which also weighs what this learner knows), each named as what it is
                reasons.append(reason(ReasonCode.SIMILAR_LEARNERS_SUCCEEDED, f"{success:.2f}", f"{similar:.2f}"))
        language = _language_of(ra.view.primary_languages[j], self.module_languages[j], x.options.languages)
        reasons.append(reason(ReasonCode.LANGUAGE_MATCH, language))
        # tuple.__new__: the NamedTuples' own constructors cost more than the rest of a gain
        gains = tuple([_new(SkillGain, (k, b, a)) for k, b, a in zip(skill_ids, before, after, strict=True)])
        return _new(PathStep, (position, module_id, score, success, gains, minutes, review, tuple(reasons),
                               StepKind.STUDY, ()))  # fmt: skip

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


def _best_unlocked(ra: _RoleArrays, j: int, satisfied: BoolArray, reachable: BoolArray) -> str | None:
    """The module j is a prerequisite of that teaches the most role skills (smallest id on ties),
    among those the learner can take: a module they cannot take is no reason to study j."""
    best: tuple[float, str] | None = None
    for k, relevance, module_id in ra.dependents_info[j]:
        if satisfied.item(k) or not reachable.item(k):
            continue
        if best is None or relevance > best[0]:
            best = (relevance, module_id)
    return best[1] if best else None


@functools.lru_cache(maxsize=8192)
def _language_of(taught: frozenset[str], module_languages: tuple[str, ...], preferred: tuple[str, ...]) -> str:
    for lang in preferred:
        if primary_language(lang) in taught:
            return primary_language(lang)
    # followed in Chinese by a learner who reads it without listing it (Chinese reached on the ladder)
    return "zh" if "zh" in taught else module_languages[0]


@dataclass(frozen=True)
class _ChineseRoute:
    """The Chinese route of a batch's learners: the level each aims at, and the modules that get
    them there. A learner who takes none has target = their level and no route module."""

    level_now: IntArray  # (learners,) the HSK level before the path
    target: IntArray  # (learners,) the HSK level the path reaches when it climbs the ladder
    gate: IntArray  # (learners, view modules) the HSK level at which each can follow each module
    allowed: BoolArray  # (learners, view modules) followable at the target level, not excluded
    reachable: BoolArray  # (learners, view modules) _reachable under `allowed`
    modules: BoolArray  # (learners, view modules) the route: a ladder module reaching the target, with
    # every module it needs not yet mastered (prerequisites, and the ladder below its own level)
    opened: FloatArray  # (learners, requirements) 1 where the route opens a requirement still short
    # unlocked() per (learner, level): every route step of a learner at one level asks the same
    _unlocked: dict[tuple[int, int], int | None] = field(default_factory=dict, compare=False, repr=False)

    def unlocked(self, ra: _RoleArrays, row: int, level: int) -> int | None:
        """The view module a route step at `level` leads to: among those the route opens (taught
        only in Chinese above `level`, up to the target) that the learner can reach, the one
        needing the lowest level, teaching and leading to the role most, smallest id."""
        key = (row, level)
        if key in self._unlocked:
            return self._unlocked[key]
        gate = self.gate[row]
        ahead = np.flatnonzero((gate > level) & (gate <= self.target[row]) & self.reachable[row] & ~self.modules[row])
        found = None
        if ahead.size:
            gates, irrelevant, rank = gate.tolist(), *ra.unlock_order
            found = min(ahead.tolist(), key=lambda k: (irrelevant[k], gates[k], rank[k]))
        self._unlocked[key] = found
        return found


def _chinese_route(
    ra: _RoleArrays,
    gate: IntArray,
    excluded: BoolArray,
    level_now: IntArray,
    mastered: BoolArray,
    reachable: BoolArray,
    mastery: FloatArray,
) -> _ChineseRoute | None:
    """The Chinese route of each learner whose role needs modules taught only in Chinese above
    their level (None when no learner of the batch does): the lowest HSK level that opens as many
    of the role's requirements still short as any level the Chinese ladder can take them to (a
    ladder module is itself followed at its own min level, so the ladder is climbed step by step),
    and the modules that reach it. Per learner and row-wise, so a learner's route does not depend
    on the batch."""
    view = ra.view
    raises = view.raises_chinese_level
    n_view = len(view.module_ids)
    teaches = view.teaches_role[None] > 0

    def covered(reach: BoolArray) -> BoolArray:
        return np.asarray((reach[:, :, None] & teaches).any(axis=1))

    short = mastery[:, ra.req_idx] < ra.level
    open_now = covered(reachable) & short
    rows = np.flatnonzero((short & ~open_now).any(axis=1) & (raises[None] > level_now[:, None]).any(axis=1))
    if not rows.size:
        return None
    g, ex, m, start = gate[rows], excluded[rows], mastered[rows], level_now[rows]
    best_open, best_level, best_reach = open_now[rows], start.copy(), reachable[rows]
    # an aim above the highest level the ladder raises to climbs as that level does, and a level
    # must open strictly more to be chosen: those aims cannot change the choice
    for aim in range(int(start.min()) + 1, min(MAX_HSK_LEVEL, int(raises.max(initial=0))) + 1):
        cap = np.maximum(start, aim)
        level = start.copy()
        while True:  # climb: each level reached opens the ladder modules followed at it
            reach = _reachable(ra, (g <= level[:, None]) & ~ex, m)
            up = np.minimum(np.maximum(level, np.where(reach, raises, 0).max(axis=1, initial=0)), cap)
            if (up == level).all():
                break
            level = up
        opens = covered(reach) & short[rows]
        better = opens.sum(axis=1) > best_open.sum(axis=1)
        best_open = np.where(better[:, None], opens, best_open)
        best_level = np.where(better, level, best_level)
        best_reach = np.where(better[:, None], reach, best_reach)
    climbing = best_level > start
    if not climbing.any():
        return None
    target = level_now.copy()
    target[rows] = best_level
    allowed = (gate <= target[:, None]) & ~excluded
    reach_all = reachable.copy()
    reach_all[rows] = best_reach
    opened = np.zeros((len(gate), len(ra.req_idx)))
    opened[rows] = (best_open & ~open_now[rows]).astype(np.float64)
    modules = np.zeros_like(allowed)
    # per learner in plain Python values (a numpy scalar per module and learner costs more than the walk)
    raised, prerequisites, ids = raises.tolist(), view.prereq_lists, view.module_ids
    for b in rows[climbing].tolist():
        reach_b, mastered_b, gate_b = reach_all[b].tolist(), mastered[b].tolist(), gate[b].tolist()
        now_b = int(level_now[b])
        chosen: set[int] = set()
        wanted = [int(target[b])]
        while wanted:  # the ladder module reaching each level wanted, and what it needs
            aim = wanted.pop()
            if aim <= now_b or any(raised[k] >= aim for k in chosen):
                continue
            ladder = [k for k in range(n_view) if reach_b[k] and raised[k] >= aim and not mastered_b[k]]
            if not ladder:
                continue
            stack = [min(ladder, key=lambda k: (raised[k], ids[k]))]
            while stack:
                k = stack.pop()
                if k in chosen or mastered_b[k]:
                    continue
                chosen.add(k)
                stack.extend(prerequisites[k])
                if gate_b[k] > now_b:
                    wanted.append(gate_b[k])
        modules[b, sorted(chosen)] = True
    return _ChineseRoute(level_now, target, gate, allowed, reach_all, modules, opened)


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
    gate: IntArray,
    chinese_level: int,
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

    # a learner reads Chinese when they list it or have reached HSK 1 (CatalogArrays.chinese_gate)
    reads_chinese = chinese_level >= 1 or "zh" in {primary_language(t) for t in x.options.languages}
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
        if module.module_id in x.options.exclude_module_ids:
            reasons.append(renderer.reason(ReasonCode.MODULE_EXCLUDED, skill_id, module.module_id))
        elif reads_chinese and chinese_level < gate[q] < NEVER:
            # taught in Chinese above any level the Chinese ladder takes this learner to
            reasons.append(renderer.reason(ReasonCode.CHINESE_LEVEL_BLOCKED, skill_id, module.module_id,
                                           str(int(gate[q])), str(chinese_level)))  # fmt: skip
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
    if not (teaching & arrays.taught_mask(options.languages)).any():
        return f"no module teaching {gap_skills} is taught in the learner's languages ({langs})"
    if not (teaching & language_ok).any():
        need = int(arrays.min_chinese_level[teaching & arrays.taught_mask(options.languages)].min())
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
