"""Learning paths: the ordered next modules for one learner, each with why it is there."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


class StopReason(enum.Enum):
    MAX_STEPS = "max_steps"
    TIME_BUDGET = "time_budget"
    ROLE_READY = "role_ready"
    NO_ELIGIBLE_MODULE = "no_eligible_module"
    REPEATED_FAILURE = "repeated_failure"
    ROLE_OUT_OF_REACH = "role_out_of_reach"


class ReasonCode(enum.Enum):
    SKILL_GAP = "skill_gap"
    PREREQUISITE_FOR = "prerequisite_for"
    ROLE_REQUIRES = "role_requires"
    SIMILAR_LEARNERS_SUCCEEDED = "similar_learners_succeeded"
    REVIEW_DUE = "review_due"
    LANGUAGE_MATCH = "language_match"
    CHECK_DUE = "check_due"
    REMEDIATE = "remediate"
    NEEDS_SUPPORT = "needs_support"
    # path-level blockers: why a role skill is out of reach under the learner's constraints
    LANGUAGE_BLOCKED = "language_blocked"
    CHINESE_LEVEL_BLOCKED = "chinese_level_blocked"
    NOT_IN_CATALOG = "not_in_catalog"
    MODULE_EXCLUDED = "module_excluded"
    CONFIRM_PREREQUISITE = "confirm_prerequisite"
    LANGUAGE_UNLOCK = "language_unlock"


class StepKind(enum.Enum):
    STUDY = "study"
    SKILL_CHECK = "skill_check"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    params: Mapping[str, str]
    text: str


class SkillGain(NamedTuple):
    """A tuple, not a frozen dataclass: a cohort builds millions of these, and a frozen dataclass
    costs five times as much to construct."""

    skill_id: str
    mastery_before: float
    mastery_after: float


class PathStep(NamedTuple):
    """A tuple for the same reason as SkillGain."""

    position: int
    module_id: str
    score: float
    expected_success: float
    gains: tuple[SkillGain, ...]
    estimated_minutes: int
    review: bool
    reasons: tuple[Reason, ...]
    kind: StepKind = StepKind.STUDY
    check_skill_ids: tuple[str, ...] = ()  # a skill check's skills (module_id is then empty)


@dataclass(frozen=True)
class LearningPath:
    learner_id: str
    target_role_id: str
    steps: tuple[PathStep, ...]
    readiness_now: float
    readiness_after: float
    stop_reason: StopReason
    unreachable_skill_ids: tuple[str, ...] = ()
    model_version: str = ""
    generated_at: datetime | None = None
    blockers: tuple[Reason, ...] = ()  # what stops the path short of the role, when something does
    locale: str = "en"  # the locale of every reason text in the path
