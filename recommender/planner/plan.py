"""plan_path(): one learner's ordered next modules. Pure and deterministic (ties go to the
smaller module id), vectorized over modules so a step costs a few numpy operations.

Each step picks, among eligible modules, the best of
    value = projected readiness gain toward the role + UNLOCK_WEIGHT * what it unlocks toward it
    score = value * (ZPD_FLOOR + (1 - ZPD_FLOOR) * zpd(expected success)) / sqrt(hours)
where zpd peaks at TARGET_SUCCESS: not trivial, not hopeless (the zone of proximal development).
After a step the planner projects the learner's expected mastery (a BKT update at the expected
score), so the next step builds on it; projected mastery never decreases, hence neither does
readiness along the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from recommender.domain.catalog import TargetRole
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, PathStep, Reason, ReasonCode, SkillGain, StopReason
from recommender.errors import PreconditionFailed
from recommender.planner.arrays import CatalogArrays, SkillParamArrays, primary_language
from recommender.planner.reasons import render

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

TARGET_SUCCESS = 0.7
ZPD_WIDTH = 0.25
ZPD_FLOOR = 0.4
UNLOCK_WEIGHT = 0.5
SIMILAR_LEARNERS_MIN_SUCCESS = 0.6
EPS = 1e-9


@dataclass(frozen=True)
class PlanOptions:
    target_role_id: str
    languages: tuple[str, ...]
    max_steps: int = 10
    time_budget_minutes: int = 0
    exclude_module_ids: frozenset[str] = frozenset()
    locale: str = "en"
    mastery_threshold: float = 0.6
    confidence_margin: float = 0.5


@dataclass(frozen=True)
class LearnerState:
    """What the planner knows of a learner, per skill in catalog.skill_ids order."""

    learner: Learner
    mastery: FloatArray  # now, forgetting applied; the BKT prior for never-practiced skills
    peak: FloatArray  # mastery right after the last practice (0 when never practiced)
    days_since_practice: FloatArray  # NaN when never practiced


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
    role_weights = arrays.weights[:, req_idx]  # (n_modules, n_requirements)
    threshold = options.mastery_threshold

    excluded = np.array([m in options.exclude_module_ids for m in catalog.module_ids], dtype=bool)
    language_ok = arrays.language_mask(options.languages, state.learner.chinese_level)
    allowed = language_ok & ~excluded

    def readiness(m: FloatArray) -> float:
        return float(np.minimum(m[req_idx] / level, 1.0) @ weight)

    def mastered_modules(m: FloatArray) -> BoolArray:
        return np.asarray(arrays.teaches @ (m < threshold).astype(np.float64) == 0)

    walk = _Walk(mastery=state.mastery.copy(), placed=np.zeros(len(catalog.module_ids), dtype=bool))
    readiness_now = readiness(walk.mastery)
    unreachable = _unreachable_skills(arrays, allowed, mastered_modules(walk.mastery), walk.mastery, req_idx, level)
    stop = StopReason.MAX_STEPS
    review_due = (state.peak[req_idx] >= level) & (state.mastery[req_idx] < level)

    while True:
        if readiness(walk.mastery) >= 1.0 - EPS:
            stop = StopReason.ROLE_READY
            break
        if len(walk.steps) >= options.max_steps:
            stop = StopReason.MAX_STEPS
            break
        satisfied = mastered_modules(walk.mastery) | walk.placed
        unmet = arrays.prerequisites @ (~satisfied).astype(np.float64)
        eligible = allowed & (unmet == 0) & ~walk.placed
        success = _expected_success(arrays, kt, walk.mastery, model)
        # projected mastery of the role's skills after each module (n_modules, n_requirements)
        m_role = walk.mastery[req_idx]
        updated = _expected_update(m_role, success[:, None], kt, req_idx)
        projected = np.maximum(m_role + role_weights * (updated - m_role), m_role)
        gain = (np.minimum(projected / level, 1.0) - np.minimum(m_role / level, 1.0)) @ weight
        unlock = _unlock_value(arrays, role_weights, m_role, level, weight, walk.placed) * ~satisfied
        value = gain + UNLOCK_WEIGHT * unlock
        candidates = eligible & (value > EPS)
        if options.time_budget_minutes > 0:
            fits = walk.minutes_used + arrays.minutes <= options.time_budget_minutes
            if candidates.any() and not (candidates & fits).any():
                stop = StopReason.TIME_BUDGET
                break
            candidates &= fits
        if not candidates.any():
            stop = StopReason.NO_ELIGIBLE_MODULE
            break
        zpd = np.exp(-(((success - TARGET_SUCCESS) / ZPD_WIDTH) ** 2))
        score = value * (ZPD_FLOOR + (1.0 - ZPD_FLOOR) * zpd) / np.sqrt(arrays.minutes / 60.0)
        choice = int(np.argmax(np.where(candidates, score, -np.inf)))  # first max = smallest id
        walk.steps.append(
            _step(arrays, kt, state, options, role, walk, choice, float(score[choice]), success,
                  unlock, satisfied, review_due, req_idx, level, model)
        )  # fmt: skip

    if not walk.steps and stop is not StopReason.ROLE_READY:
        raise PreconditionFailed(
            _blocking_constraint(arrays, state, options, excluded, language_ok, req_idx, level),
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


def _expected_success(
    arrays: CatalogArrays, kt: SkillParamArrays, mastery: FloatArray, model: ModelOpinion | None
) -> FloatArray:
    """P(success) per module: BKT's prediction from mastery, shifted by difficulty, blended in
    logit space with the hybrid model's prediction when one is active."""
    known = arrays.weight_share @ mastery
    guess = arrays.weight_share @ kt.guess
    slip = arrays.weight_share @ kt.slip
    content = np.clip(known * (1.0 - slip) + (1.0 - known) * guess, 1e-4, 1 - 1e-4)
    logit = np.log(content / (1.0 - content)) + 2.0 * (0.5 - arrays.difficulty)
    if model is not None:
        p = np.clip(model.success, 1e-4, 1 - 1e-4)
        logit = 0.5 * logit + 0.5 * np.log(p / (1.0 - p))
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def _expected_update(
    m: FloatArray, success: FloatArray, kt: SkillParamArrays, idx: npt.NDArray[np.intp] | slice
) -> FloatArray:
    """Expected mastery after studying: the BKT update at the expected score, but never less than
    practice alone gives (m + (1 - m) learn). A low predicted score would lower the *estimate*;
    studying still teaches, and the plan is about learning, not about the estimate."""
    guess, slip, learn = kt.guess[idx], kt.slip[idx], kt.learn[idx]
    p_right = m * (1 - slip) + (1 - m) * guess
    p_wrong = m * slip + (1 - m) * (1 - guess)
    post = success * (m * (1 - slip) / p_right) + (1 - success) * (m * slip / p_wrong)
    return np.asarray(np.maximum(post + (1.0 - post) * learn, m + (1.0 - m) * learn), dtype=np.float64)


def _unlock_value(
    arrays: CatalogArrays,
    role_weights: FloatArray,
    m_role: FloatArray,
    level: FloatArray,
    weight: FloatArray,
    placed: BoolArray,
) -> FloatArray:
    """How much of the remaining role gap lies behind each module, propagated backwards along
    prerequisite edges (shared among a module's prerequisites, discounted per level). A module
    mastered to the prerequisite threshold can still be far from the role's level: it keeps its
    value as a target until it is placed in the path."""
    need = np.maximum(level - m_role, 0.0) / level * weight  # (n_requirements,)
    direct = (role_weights > 0).astype(np.float64) @ need * ~placed
    behind = np.zeros_like(direct)
    for _ in range(arrays.depth):  # one level of the prerequisite graph per pass
        deeper = arrays.unlock_share @ (direct + 0.5 * behind)
        if np.array_equal(deeper, behind):
            break
        behind = deeper
    return np.asarray(behind, dtype=np.float64)


def _step(
    arrays: CatalogArrays,
    kt: SkillParamArrays,
    state: LearnerState,
    options: PlanOptions,
    role: TargetRole,
    walk: _Walk,
    j: int,
    score: float,
    success: FloatArray,
    unlock: FloatArray,
    satisfied: BoolArray,
    review_due: BoolArray,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
    model: ModelOpinion | None,
) -> PathStep:
    catalog = arrays.catalog
    module = catalog.modules[catalog.module_ids[j]]
    skill_idx = np.flatnonzero(arrays.weights[j])
    before = walk.mastery[skill_idx].copy()
    updated = _expected_update(before, np.full(len(skill_idx), success[j]), kt, skill_idx)
    after = np.maximum(before + arrays.weights[j, skill_idx] * (updated - before), before)
    walk.mastery[skill_idx] = after
    walk.placed[j] = True
    walk.minutes_used += arrays.minutes[j]

    reasons: list[Reason] = []
    review = False

    def add(code: ReasonCode, **params: str) -> None:
        reasons.append(render(code, params, catalog, options.locale))

    for r, s in enumerate(req_idx):
        if s in skill_idx and before[list(skill_idx).index(s)] < level[r]:
            skill_id = catalog.skill_ids[s]
            if review_due[r]:
                review = True
                days = state.days_since_practice[s]
                add(ReasonCode.REVIEW_DUE, skill_id=skill_id, days_since_practice=f"{days:.0f}")
            add(ReasonCode.SKILL_GAP, skill_id=skill_id, mastery=f"{walk_before(before, skill_idx, s):.2f}",
                required=f"{level[r]:.2f}")  # fmt: skip
            add(ReasonCode.ROLE_REQUIRES, role_id=role.role_id, skill_id=skill_id)
    if unlock[j] > EPS:
        unlocked = _best_unlocked(arrays, j, satisfied, req_idx)
        if unlocked is not None:
            add(ReasonCode.PREREQUISITE_FOR, module_id=unlocked)
    if model is not None and model.success[j] >= SIMILAR_LEARNERS_MIN_SUCCESS:
        add(ReasonCode.SIMILAR_LEARNERS_SUCCEEDED, expected_success=f"{model.success[j]:.2f}")
    language = _language_of(module.languages, options.languages)
    add(ReasonCode.LANGUAGE_MATCH, language=language)
    return PathStep(
        position=len(walk.steps) + 1,
        module_id=module.module_id,
        score=score,
        expected_success=float(success[j]),
        gains=tuple(
            SkillGain(catalog.skill_ids[s], float(b), float(a))
            for s, b, a in zip(skill_idx, before, after, strict=True)
        ),
        estimated_minutes=module.estimated_minutes,
        review=review,
        reasons=tuple(reasons),
    )


def walk_before(before: FloatArray, skill_idx: npt.NDArray[np.intp], s: int) -> float:
    return float(before[list(skill_idx).index(s)])


def _best_unlocked(arrays: CatalogArrays, j: int, satisfied: BoolArray, req_idx: npt.NDArray[np.intp]) -> str | None:
    """The module j is a prerequisite of that teaches the most role skills (smallest id on ties)."""
    dependents = arrays.unlock_share.getrow(j).indices
    best: tuple[float, str] | None = None
    for k in sorted(dependents):
        if satisfied[k]:
            continue
        relevance = float(arrays.weights[k, req_idx].sum())
        module_id = arrays.catalog.module_ids[k]
        if best is None or relevance > best[0]:
            best = (relevance, module_id)
    return best[1] if best else None


def _language_of(module_languages: tuple[str, ...], preferred: tuple[str, ...]) -> str:
    taught = {primary_language(x) for x in module_languages}
    for lang in preferred:
        if primary_language(lang) in taught:
            return primary_language(lang)
    return module_languages[0]


def _unreachable_skills(
    arrays: CatalogArrays,
    allowed: BoolArray,
    mastered: BoolArray,
    mastery: FloatArray,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
) -> tuple[str, ...]:
    """Role skills still below level that no module reachable under the constraints teaches."""
    reachable = np.zeros_like(allowed)
    for _ in range(len(allowed) + 1):
        unmet = arrays.prerequisites @ (~(mastered | reachable)).astype(np.float64)
        grown = allowed & (unmet == 0)
        if (grown == reachable).all():
            break
        reachable = grown
    taught = np.asarray(arrays.teaches[reachable].sum(axis=0)).ravel() > 0
    gap = mastery[req_idx] < level
    return tuple(arrays.catalog.skill_ids[s] for s, g in zip(req_idx, gap, strict=True) if g and not taught[s])


def _blocking_constraint(
    arrays: CatalogArrays,
    state: LearnerState,
    options: PlanOptions,
    excluded: BoolArray,
    language_ok: BoolArray,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
) -> str:
    """Name what stops every module that would close the role gap."""
    catalog = arrays.catalog
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
