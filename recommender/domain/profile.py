"""Skill profiles: what the service believes each learner knows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from recommender.domain.learner import Learner


@dataclass(frozen=True)
class SkillState:
    """Mastery of one skill as of `last_practiced_at` (before any forgetting since then).
    `studies_since_check` counts module-level results since the skill's last item result: module
    scores are weak evidence about one skill, so an estimate that stays low after several studies
    calls for a skill check (direct evidence) rather than more study. `studied`: a module
    assessment here has taught the skill (whatever came after it): an item on a skill the learner
    was taught here is read with emissions of its own (kt/bkt.py)."""

    skill_id: str
    mastery: float
    attempts: int
    last_practiced_at: datetime
    studies_since_check: int = 0
    studied: bool = False


NO_STUDIES: Mapping[str, int] = MappingProxyType({})


def skill_state(
    skill_id: str,
    mastery: float,
    attempts: int,
    last_practiced_at: datetime,
    studies_since_check: int,
    studied: bool = False,
) -> SkillState:
    """SkillState(...) at a third of the cost, for the store's reads and the tracer's updates (one
    or more per ingested result): a frozen dataclass's __init__ sets each field through
    object.__setattr__, while this fills the new instance's fields at once. The same object
    (SkillState has no __post_init__ or computed fields)."""
    state = _new(SkillState)
    state.__dict__.update(
        skill_id=skill_id,
        mastery=mastery,
        attempts=attempts,
        last_practiced_at=last_practiced_at,
        studies_since_check=studies_since_check,
        studied=studied,
    )
    return state


_new = object.__new__


@dataclass(frozen=True)
class LearnerRecord:
    """What planning reads of one learner, read together: their features, skill states (sorted
    by skill) and how many times they studied each module (module assessments; practice and check
    items are evidence about skills, not a completed module)."""

    learner: Learner
    states: tuple[SkillState, ...]
    studied_module_ids: Mapping[str, int]  # module -> module assessments recorded


@dataclass(frozen=True)
class SkillProfile:
    """Masteries as of `as_of`, forgetting applied; skills sorted by id."""

    learner_id: str
    skills: tuple[SkillState, ...]
    updated_at: datetime | None
    as_of: datetime

    def mastery_of(self, skill_id: str, default: float) -> float:
        for s in self.skills:
            if s.skill_id == skill_id:
                return s.mastery
        return default
