"""Levels of one skill (issue #20): a catalog teaches a skill in steps (101, 201, 301), each
module building on the one before and teaching the same skill further. Knowledge tracing keeps one
mastery per skill, so evidence from the 101 module's assessment shows the skill at the 101 level
only: the 201 module a dependent needs is taught, not skipped, unless a check assesses the skill
itself or a module built on the 201 one is mastered."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.domain.catalog import Catalog, Module, Skill, SkillRequirement, SkillWeight, TargetRole, build_catalog
from recommender.domain.learner import Learner
from recommender.planner.arrays import CatalogArrays
from recommender.planner.plan import LearnerState, PlanOptions
from tests.planner.test_plan_properties import check_invariants, plan

OPTIONS = PlanOptions("r", ("en",), check_after_studies=0)
KOFI = Learner("kofi", languages=("en",), target_role_id="r")


def _ladder() -> Catalog:
    """s-101 -> s-201 (both teach s) -> m-101 (teaches m); the role needs m."""
    skills = [Skill("s", {"en": "S"}, "x"), Skill("m", {"en": "M"}, "x")]
    modules = [
        Module("s-101", {"en": "S 1"}, (SkillWeight("s"),), (), ("en",), "x", 0.3, 60),
        Module("s-201", {"en": "S 2"}, (SkillWeight("s"),), ("s-101",), ("en",), "x", 0.5, 60),
        Module("m-101", {"en": "M 1"}, (SkillWeight("m"),), ("s-201",), ("en",), "x", 0.3, 60),
    ]
    return build_catalog(skills, modules, [TargetRole("r", {"en": "R"}, "x", (SkillRequirement("m", 0.8),))])


def _state(s: float, m: float, studied: dict[str, int], studies_since_check: list[int]) -> LearnerState:
    """Mastery and module results since the last check of (s, m), in the catalog's skill order."""
    order = [_ladder().skill_index[k] for k in "sm"]
    mastery, studies = np.zeros(2), np.zeros(2, dtype=np.int64)
    mastery[order], studies[order] = [s, m], studies_since_check
    days = np.where(mastery > 0.5, 1.0, np.nan)
    return LearnerState(KOFI, mastery, mastery.copy(), days, studied, studies)


def _modules(catalog: Catalog, state: LearnerState, options: PlanOptions = OPTIONS) -> list[str]:
    path = plan(catalog, state, options)
    check_invariants(catalog, state, options, path)
    return [step.module_id for step in path.steps]


def test_the_view_marks_the_modules_that_teach_a_skill_further() -> None:
    view = CatalogArrays.build(_ladder()).role_view("r")
    gated = dict(zip(view.module_ids, view.builds_on_own_skill.tolist(), strict=True))
    assert gated == {"s-101": False, "s-201": True, "m-101": False}


def test_a_fresh_learner_is_taught_every_level_before_what_needs_the_top_one() -> None:
    """Projecting s-101 puts s over the confidence; s-201 is still taught before m-101."""
    assert _modules(_ladder(), _state(0.1, 0.1, {}, [0, 0])) == ["s-101", "s-201", "m-101"]


def test_the_lower_modules_assessment_does_not_show_the_higher_module_mastered() -> None:
    """s-101 studied and s estimated mastered from its assessment: s-201 comes before m-101."""
    assert _modules(_ladder(), _state(0.9, 0.1, {"s-101": 1}, [1, 0])) == ["s-201", "m-101"]


def test_a_check_after_the_lower_module_assesses_the_skill_itself() -> None:
    """The same learner with a passed check of s since: s-201 is not taught again."""
    assert _modules(_ladder(), _state(0.9, 0.1, {"s-101": 1}, [0, 0])) == ["m-101"]


@pytest.mark.parametrize("placement", [True, False])
def test_placement_evidence_or_the_prior_alone_gate_nothing(placement: bool) -> None:
    """No module result on s (a placement item, or nothing but the prior): nothing to gate."""
    state = _state(0.9, 0.1, {}, [0, 0])
    if not placement:
        state = LearnerState(KOFI, state.mastery, np.zeros(2), np.full(2, np.nan), {}, np.zeros(2, dtype=np.int64))
    assert _modules(_ladder(), state) == ["m-101"]


def test_a_mastered_module_built_on_the_higher_one_shows_it_mastered() -> None:
    """m-101 studied and mastered, s last evidenced by s-101's assessment: s-201 is implied by
    m-101 (which builds on it) and is not taught; the role is met."""
    state = _state(0.9, 0.95, {"s-101": 1, "m-101": 1}, [1, 1])
    assert _modules(_ladder(), state) == []


def test_levels_planned_on_are_exact() -> None:
    """The oracle's mastery is the true level (mastery_is_level): s at 0.9 is s-201's level."""
    levels = PlanOptions("r", ("en",), check_after_studies=0, mastery_is_level=True)
    assert _modules(_ladder(), _state(0.9, 0.1, {"s-101": 1}, [1, 0]), levels) == ["m-101"]
