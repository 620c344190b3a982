"""plan_path(): one learner's ordered next modules. Pure and deterministic (ties go to the
smaller module id), vectorized over modules so a step costs a few numpy operations.

Each step picks, among eligible modules, the best of
    value = projected readiness gain toward the role + UNLOCK_WEIGHT * what it unlocks toward it
    score = value * (ZPD_FLOOR + (1 - ZPD_FLOOR) * zpd(expected success)) / sqrt(hours)
where zpd peaks at TARGET_SUCCESS: not trivial, not hopeless (the zone of proximal development).
After a step the planner projects the learner's expected mastery (a BKT update at the expected
score), so the next step builds on it; projected mastery never decreases, hence neither does
readiness along the path. When a role skill's estimate has stalled below level after several
studies, the first step is a skill check instead (_skill_check).
"""

from __future__ import annotations

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
TINY = 1e-300
CHECK_MINUTES_PER_SKILL = 15


@dataclass(frozen=True)
class PlanOptions:
    target_role_id: str
    languages: tuple[str, ...]
    max_steps: int = 10
    time_budget_minutes: int = 0
    exclude_module_ids: frozenset[str] = frozenset()
    locale: str = "en"
    mastery_threshold: float = 0.85
    confidence_margin: float = 0.5
    # studies (module results) after which a role skill still below level gets a skill check
    # first; 0 never plans one
    check_after_studies: int = 3


@dataclass(frozen=True)
class LearnerState:
    """What the planner knows of a learner, per skill in catalog.skill_ids order."""

    learner: Learner
    mastery: FloatArray  # now, forgetting applied; the BKT prior for never-practiced skills
    peak: FloatArray  # mastery right after the last practice (0 when never practiced)
    days_since_practice: FloatArray  # NaN when never practiced
    # modules the learner has already studied (has a module-level result for): like a module placed
    # earlier in the path, a studied prerequisite no longer blocks what depends on it, so a path
    # the learner followed stays valid the next day even if a result came in low
    studied: frozenset[str] = frozenset()
    # module-level results per skill since its last item result (None: no skill check is planned)
    studies_since_check: IntArray | None = None


@dataclass(frozen=True)
class ModelOpinion:
    """The hybrid model's predicted success per module for this learner (catalog order)."""

    success: FloatArray
    version: str


@dataclass
class _Walk:
    mastery: FloatArray
    placed: BoolArray
    minutes_used: float = 0.0
    steps: list[PathStep] = field(default_factory=list)


def plan_path(
    arrays: CatalogArrays,
    kt: SkillParamArrays,
    state: LearnerState,
    options: PlanOptions,
    now: datetime,
    model: ModelOpinion | None = None,
) -> LearningPath:
    catalog = arrays.catalog
    role = catalog.roles[options.target_role_id]
    req_idx = np.array([catalog.skill_index[r.skill_id] for r in role.requirements])
    # mastery is P(skill mastered): a requirement counts as met with confidence halfway between the
    # required level and certainty, so an optimistic estimate does not end a path too early
    required = np.array([r.level for r in role.requirements])
    level = required + options.confidence_margin * (1.0 - required)
    weight = np.array([r.weight for r in role.requirements])
    weight = weight / weight.sum()
    view = arrays.role_view(role.role_id)  # every per-step array below is over this subset
    n_skills, n_view = len(catalog.skill_ids), len(view.module_ids)
    threshold = options.mastery_threshold

    allowed = arrays.language_mask(options.languages, state.learner.chinese_level)[view.modules]
    for module_id in options.exclude_module_ids:
        if module_id in view.position:
            allowed[view.position[module_id]] = False

    def readiness(m: FloatArray) -> float:
        return float(np.minimum(m[req_idx] / level, 1.0) @ weight)

    # Per-step work runs over (module, its skills) pairs, padded: `pad` indexes skills, and its
    # padding points at a sentinel skill slot (index n_skills) that is always mastered (1.0) and
    # weighs nothing, so no step needs a copy or a mask.
    mastery = np.append(state.mastery, 1.0)
    walk = _Walk(mastery=mastery, placed=np.zeros(n_view, dtype=bool))
    pad = view.skill_pad
    requirement_of = np.full(n_skills + 1, len(req_idx), dtype=np.intp)
    requirement_of[req_idx] = np.arange(len(req_idx))
    pad_req = requirement_of[pad]  # requirement index, or len(req_idx) for skills the role does not need
    pad_level = np.append(level, 1.0)[pad_req]
    pad_weight = np.append(weight, 0.0)[pad_req]
    pad_teaches = np.append(np.ones(len(req_idx)), 0.0)[pad_req]
    pad_weights = view.pad_weights
    # padding gets guess = slip = 0.5 so the BKT update stays finite there (its weight is 0)
    pad_guess, pad_slip = (np.append(a, 0.5)[pad] for a in (kt.guess, kt.slip))
    pad_learn = np.append(kt.learn, 0.0)[pad]
    module_guess = (view.pad_share * pad_guess).sum(axis=1)
    module_slip = (view.pad_share * pad_slip).sum(axis=1)
    module_right = 1.0 - module_slip
    bkt = _BKTPads(pad_guess, pad_slip, pad_learn)
    content_shift = 2.0 * (0.5 - view.difficulty)
    model_logit = None
    if model is not None:
        p = np.clip(model.success[view.modules], 1e-4, 1 - 1e-4)
        model_logit = np.log(p / (1.0 - p))
    hours_penalty = 1.0 / np.sqrt(view.minutes / 60.0)
    renderer = arrays.renderer(options.locale)
    satisfied_ext = np.ones(n_view + 1, dtype=bool)  # the last slot pads prerequisite lists

    studied = np.zeros(n_view, dtype=bool)
    for module_id in state.studied:
        if module_id in view.position:
            studied[view.position[module_id]] = True
    readiness_now = readiness(walk.mastery)
    unreachable = _unreachable_skills(
        catalog,
        view,
        allowed,
        view.mastered(walk.mastery[:n_skills], threshold) | studied,
        walk.mastery,
        req_idx,
        level,
    )
    stop = StopReason.MAX_STEPS
    review_due = (state.peak[req_idx] >= level) & (state.mastery[req_idx] < level)
    direct = np.zeros(n_view)
    unlock = np.zeros(n_view)
    need = np.zeros(len(req_idx) + 1)
    check = _skill_check(catalog, state, options, role, req_idx, level, renderer)
    if check is not None:
        walk.steps.append(check)
        walk.minutes_used += check.estimated_minutes

    while True:
        if readiness(walk.mastery) >= 1.0 - EPS:
            stop = StopReason.ROLE_READY
            break
        if len(walk.steps) >= options.max_steps:
            stop = StopReason.MAX_STEPS
            break
        m_pad = walk.mastery[pad]
        satisfied = (m_pad >= threshold).all(axis=1) | walk.placed | studied
        satisfied_ext[:n_view] = satisfied
        eligible = allowed & satisfied_ext[view.prereq_pad].all(axis=1) & ~walk.placed
        # P(success) per module: BKT's prediction shifted by difficulty, blended in logit space
        # with the hybrid model's prediction when one is active
        known = (view.pad_share * m_pad).sum(axis=1)
        # np.minimum(np.maximum()) is np.clip, at a fraction of its per-call cost
        content = np.minimum(np.maximum(known * module_right + (1.0 - known) * module_guess, 1e-4), 1 - 1e-4)
        logit = np.log(content / (1.0 - content)) + content_shift
        if model_logit is not None:
            logit = 0.5 * logit + 0.5 * model_logit
        success = 1.0 / (1.0 + np.exp(-logit))
        # projected mastery of each module's skills after studying it (n_modules, skills per module)
        updated = bkt.expected_update(m_pad, success[:, None])
        projected = np.maximum(m_pad + pad_weights * (updated - m_pad), m_pad)
        gain = (pad_weight * (np.minimum(projected / pad_level, 1.0) - np.minimum(m_pad / pad_level, 1.0))).sum(axis=1)
        m_role = walk.mastery[req_idx]
        need[:-1] = np.maximum(level - m_role, 0.0) / level * weight  # need[-1] pads: always 0
        fresh = (pad_teaches * need[pad_req]).sum(axis=1) * ~walk.placed
        # what each module unlocks: behind @ direct, updated where `direct` changed (a step
        # changes a few modules' direct value, so this is a few columns, not a matrix product)
        changed = np.flatnonzero(fresh != direct)
        if len(changed):
            unlock += view.behind[:, changed] @ (fresh[changed] - direct[changed])
            direct = fresh
        value = gain + UNLOCK_WEIGHT * np.maximum(unlock, 0.0) * ~satisfied
        candidates = eligible & (value > EPS)
        if options.time_budget_minutes > 0:
            fits = walk.minutes_used + view.minutes <= options.time_budget_minutes
            if candidates.any() and not (candidates & fits).any():
                stop = StopReason.TIME_BUDGET
                break
            candidates &= fits
        if not candidates.any():
            stop = StopReason.NO_ELIGIBLE_MODULE
            break
        zpd = np.exp(-(((success - TARGET_SUCCESS) / ZPD_WIDTH) ** 2))
        score = value * (ZPD_FLOOR + (1.0 - ZPD_FLOOR) * zpd) * hours_penalty
        choice = int(np.argmax(np.where(candidates, score, -np.inf)))  # first max = smallest id
        walk.steps.append(
            _step(catalog, view, state, options, role, walk, choice, projected[choice], float(score[choice]),
                  success, float(unlock[choice]), satisfied, review_due, requirement_of, level, model, renderer)
        )  # fmt: skip

    if not walk.steps and stop is not StopReason.ROLE_READY:
        raise PreconditionFailed(
            _blocking_constraint(arrays, state, options, req_idx, level),
            subject="path",
        )
    return LearningPath(
        learner_id=state.learner.learner_id,
        target_role_id=role.role_id,
        steps=tuple(walk.steps),
        readiness_now=readiness_now,
        readiness_after=readiness(walk.mastery),
        stop_reason=stop,
        unreachable_skill_ids=unreachable,
        model_version=model.version if model else "",
        generated_at=now,
    )


class _BKTPads:
    """BKT parameters over the padded (module, skill) pairs, with the complements the expected
    update needs computed once per plan instead of once per step (same arithmetic, same bits)."""

    def __init__(self, guess: FloatArray, slip: FloatArray, learn: FloatArray) -> None:
        self.guess, self.slip, self.learn = guess, slip, learn
        self.right, self.wrong_guess = 1 - slip, 1 - guess

    def expected_update(self, m: FloatArray, success: FloatArray) -> FloatArray:
        """Expected mastery after studying: the BKT update at the expected score, but never less
        than practice alone gives (m + (1 - m) learn). A low predicted score would lower the
        *estimate*; studying still teaches, and the plan is about learning, not about the
        estimate. (A zero denominator comes with a zero numerator: the posterior is then 0.)"""
        known_right, known_slip, unknown = m * self.right, m * self.slip, 1 - m
        p_right = np.maximum(known_right + unknown * self.guess, TINY)
        p_wrong = np.maximum(known_slip + unknown * self.wrong_guess, TINY)
        post = success * (known_right / p_right) + (1 - success) * (known_slip / p_wrong)
        return np.asarray(np.maximum(post + (1.0 - post) * self.learn, m + unknown * self.learn), dtype=np.float64)


def _step(
    catalog: Catalog,
    view: ModuleView,
    state: LearnerState,
    options: PlanOptions,
    role: TargetRole,
    walk: _Walk,
    j: int,
    projected: FloatArray,
    score: float,
    success: FloatArray,
    unlock: float,
    satisfied: BoolArray,
    review_due: BoolArray,
    requirement_of: npt.NDArray[np.intp],
    level: FloatArray,
    model: ModelOpinion | None,
    renderer: Renderer,
) -> PathStep:
    """Place view module j (whose skills' projected mastery the step loop computed, padded):
    advance the walk and say why."""
    module = catalog.modules[view.module_ids[j]]
    taught = view.skill_pad[j]
    real = taught < len(catalog.skill_ids)
    skill_idx = taught[real]
    after_array = projected[real]
    # plain Python values from here on: per-element numpy scalars were a fifth of a step's cost
    skills, before, after = skill_idx.tolist(), walk.mastery[skill_idx].tolist(), after_array.tolist()
    success_j = float(success[j])
    walk.mastery[skill_idx] = after_array
    walk.placed[j] = True
    walk.minutes_used += view.minutes[j]

    reasons: list[Reason] = []
    review = False

    def add(code: ReasonCode, **params: str) -> None:
        reasons.append(renderer.reason(code, params))

    # the role's skills this module teaches that are still short of their level, in role order
    requirement = requirement_of[skill_idx].tolist()
    levels = level.tolist()
    gaps = sorted(
        (r, s, b) for r, s, b in zip(requirement, skills, before, strict=True) if r < len(levels) and b < levels[r]
    )
    for r, s, b in gaps:
        skill_id = catalog.skill_ids[s]
        if review_due[r]:
            review = True
            days = state.days_since_practice[s]
            add(ReasonCode.REVIEW_DUE, skill_id=skill_id, days_since_practice=f"{days:.0f}")
        add(ReasonCode.SKILL_GAP, skill_id=skill_id, mastery=f"{b:.2f}", required=f"{levels[r]:.2f}")
        add(ReasonCode.ROLE_REQUIRES, role_id=role.role_id, skill_id=skill_id)
    if unlock > EPS and not satisfied[j]:
        unlocked = _best_unlocked(view, j, satisfied)
        if unlocked is not None:
            add(ReasonCode.PREREQUISITE_FOR, module_id=unlocked)
    if model is not None and model.success[view.modules[j]] >= SIMILAR_LEARNERS_MIN_SUCCESS:
        add(ReasonCode.SIMILAR_LEARNERS_SUCCEEDED, expected_success=f"{model.success[view.modules[j]]:.2f}")
    add(
        ReasonCode.LANGUAGE_MATCH, language=_language_of(view.primary_languages[j], module.languages, options.languages)
    )
    return PathStep(
        position=len(walk.steps) + 1,
        module_id=module.module_id,
        score=score,
        expected_success=success_j,
        gains=tuple(SkillGain(catalog.skill_ids[s], b, a) for s, b, a in zip(skills, before, after, strict=True)),
        estimated_minutes=module.estimated_minutes,
        review=review,
        reasons=tuple(reasons),
    )


def _skill_check(
    catalog: Catalog,
    state: LearnerState,
    options: PlanOptions,
    role: TargetRole,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
    renderer: Renderer,
) -> PathStep | None:
    """A first step that assesses role skills instead of teaching them, when one is due: a role
    skill studied `check_after_studies` times since its last item result is still estimated below
    level. A module score is weak evidence about one skill (it mixes the learner's general ability
    and the module's other skills), so for some learners the estimate stalls while the skill is
    learned, and more study of it is wasted; an item-level check settles it. The check covers every
    role skill below level studied since its last check, so one check answers them together."""
    if options.check_after_studies <= 0 or state.studies_since_check is None:
        return None
    studies = state.studies_since_check[req_idx]
    below = state.mastery[req_idx] < level
    if not (below & (studies >= options.check_after_studies)).any():
        return None
    checked = np.flatnonzero(below & (studies >= 1)).tolist()
    minutes = CHECK_MINUTES_PER_SKILL * len(checked)
    if 0 < options.time_budget_minutes < minutes:
        return None
    skill_ids = tuple(catalog.skill_ids[int(req_idx[r])] for r in checked)
    reasons: list[Reason] = []
    for r, skill_id in zip(checked, skill_ids, strict=True):
        params = {
            "skill_id": skill_id,
            "studies": str(int(studies[r])),
            "mastery": f"{state.mastery[req_idx[r]]:.2f}",
            "required": f"{level[r]:.2f}",
        }
        reasons.append(renderer.reason(ReasonCode.CHECK_DUE, params))
        reasons.append(renderer.reason(ReasonCode.ROLE_REQUIRES, {"role_id": role.role_id, "skill_id": skill_id}))
    return PathStep(
        position=1,
        module_id="",
        score=0.0,
        expected_success=float(state.mastery[req_idx[checked]].mean()),  # P(passing): the estimate
        gains=(),
        estimated_minutes=minutes,
        review=False,
        reasons=tuple(reasons),
        kind=StepKind.SKILL_CHECK,
        check_skill_ids=skill_ids,
    )


def _best_unlocked(view: ModuleView, j: int, satisfied: BoolArray) -> str | None:
    """The module j is a prerequisite of that teaches the most role skills (smallest id on ties)."""
    best: tuple[float, str] | None = None
    for k in view.dependents[j]:
        if satisfied[k]:
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


def _unreachable_skills(
    catalog: Catalog,
    view: ModuleView,
    allowed: BoolArray,
    mastered: BoolArray,
    mastery: FloatArray,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
) -> tuple[str, ...]:
    """Role skills still below level that no module reachable under the constraints teaches."""
    reachable = np.zeros_like(allowed)
    for _ in range(view.depth + 1):
        grown = allowed & ~view.unmet_prerequisites(mastered | reachable)
        if (grown == reachable).all():
            break
        reachable = grown
    taught: BoolArray = np.asarray((view.weights[reachable][:, req_idx] > 0).any(axis=0))
    gap = mastery[req_idx] < level
    return tuple(catalog.skill_ids[s] for s, g, t in zip(req_idx, gap, taught, strict=True) if g and not t)


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
