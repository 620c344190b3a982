"""Remediation (issue #20): a prerequisite studied and not mastered blocks its dependents, the path
re-teaches it first and says so, and a module failed too often is routed around or named."""

from __future__ import annotations

import numpy as np

from recommender.domain.catalog import (
    Catalog,
    Module,
    Skill,
    SkillRequirement,
    SkillWeight,
    TargetRole,
    build_catalog,
)
from recommender.domain.learner import Learner
from recommender.domain.path import ReasonCode, StepKind, StopReason
from recommender.planner.plan import LearnerState, PlanOptions
from tests.conftest import tiny_catalog
from tests.planner.test_plan_properties import check_invariants, plan

WELDER = PlanOptions("welder", ("en",), check_after_studies=0)


def _abd_catalog(required: str, a_minutes: int = 60) -> Catalog:
    """b-101 and d-101 both build on a-101; the role needs the skills in `required` at 0.8."""
    skills = [Skill(k, {"en": k.upper()}, "x") for k in "abd"]
    modules = [
        Module("a-101", {"en": "A"}, (SkillWeight("a"),), (), ("en",), "x", 0.3, a_minutes),
        Module("b-101", {"en": "B"}, (SkillWeight("b"),), ("a-101",), ("en",), "x", 0.3, 60),
        Module("d-101", {"en": "D"}, (SkillWeight("d"),), ("a-101",), ("en",), "x", 0.3, 60),
    ]
    requirements = tuple(SkillRequirement(k, 0.8) for k in required)
    return build_catalog(skills, modules, [TargetRole("r", {"en": "R"}, "x", requirements)])


def _state(safety: float, studied: dict[str, int]) -> tuple[LearnerState, np.ndarray]:
    catalog = build_catalog(*tiny_catalog())
    mastery = np.full(len(catalog.skill_ids), 0.1)
    mastery[catalog.skill_index["safety"]] = safety
    learner = Learner("kofi", languages=("en",), target_role_id="welder")
    return LearnerState(learner, mastery, mastery.copy(), np.full(len(mastery), 1.0), studied), mastery


def test_a_studied_unmastered_prerequisite_blocks_its_dependents_and_is_retaught_first() -> None:
    catalog = build_catalog(*tiny_catalog())
    state, _ = _state(0.4, {"safety-101": 1})
    path = plan(catalog, state, WELDER)
    first = path.steps[0]
    assert first.module_id == "safety-101", "welding-101 needs safety-101, studied but not mastered"
    remediate = first.reasons[0]
    assert remediate.code is ReasonCode.REMEDIATE
    assert remediate.params == {"module_id": "safety-101", "attempts": "1", "skill_id": "safety",
                                "mastery": "0.40", "required": "0.80"}  # fmt: skip
    assert "Safety basics" in remediate.text and "1" in remediate.text
    assert [s.module_id for s in path.steps].index("welding-101") > 0
    check_invariants(catalog, state, WELDER, path)


def test_a_mastered_studied_prerequisite_does_not_come_back() -> None:
    catalog = build_catalog(*tiny_catalog())
    state, _ = _state(0.9, {"safety-101": 1})
    path = plan(catalog, state, WELDER)
    assert "safety-101" not in [s.module_id for s in path.steps]
    assert path.steps[0].module_id == "welding-101"


def test_repeated_failure_ends_the_path_on_a_supported_retake_instead_of_looping() -> None:
    catalog = build_catalog(*tiny_catalog())
    state, _ = _state(0.4, {"safety-101": 3})
    path = plan(catalog, state, WELDER)
    assert [s.module_id for s in path.steps] == ["safety-101"], "nothing else leads on: one retake, then stop"
    assert path.stop_reason is StopReason.REPEATED_FAILURE
    (blocker,) = path.blockers
    assert blocker.code is ReasonCode.NEEDS_SUPPORT
    assert blocker.params == {"module_id": "safety-101", "attempts": "3", "skill_id": "safety"}
    assert "teacher" in blocker.text
    # with no limit on attempts the path goes on past the retake
    unlimited = plan(catalog, state, PlanOptions("welder", ("en",), check_after_studies=0, max_module_attempts=0))
    assert unlimited.steps[0].module_id == "safety-101" and len(unlimited.steps) > 1 and not unlimited.blockers


def test_a_failed_out_module_is_routed_around_when_another_module_teaches_its_skill() -> None:
    skills = [Skill("a", {"en": "A"}, "x")]
    modules = [
        Module("a-101", {"en": "A, first course"}, (SkillWeight("a"),), (), ("en",), "x", 0.3, 60),
        Module("a-102", {"en": "A, second course"}, (SkillWeight("a"),), (), ("en",), "x", 0.3, 90),
    ]
    catalog = build_catalog(skills, modules, [TargetRole("r", {"en": "R"}, "x", (SkillRequirement("a", 0.8),))])
    learner = Learner("kofi", languages=("en",), target_role_id="r")
    low = np.array([0.6])  # one course more brings it to 0.84
    options = PlanOptions("r", ("en",), check_after_studies=0)
    fresh = plan(catalog, LearnerState(learner, low, low.copy(), np.ones(1)), options)
    assert fresh.steps[0].module_id == "a-101", "the shorter course first"
    failed = LearnerState(learner, low, low.copy(), np.ones(1), {"a-101": 3})
    path = plan(catalog, failed, options)
    assert [s.module_id for s in path.steps] == ["a-102"] and path.stop_reason is StopReason.ROLE_READY
    check_invariants(catalog, failed, options, path)


def test_a_mastered_module_shows_the_modules_behind_it_mastered_and_a_check_confirms_it() -> None:
    """b-101 and d-101 both build on a-101, and the role needs b and d. A learner whose placement
    shows b mastered, with no result on a, is not taught a-101 before d-101: mastering b shows a
    (the surmise relation of the prerequisite graph), and a short check of a confirms it first.
    With a result of their own on a below the confidence, the evidence rules: a-101 comes first."""
    catalog = _abd_catalog("bd")
    learner = Learner("kofi", languages=("en",), target_role_id="r")
    mastery = np.array([0.15, 0.9, 0.1])
    never_on_a = np.array([np.nan, 1.0, 1.0])
    options = PlanOptions("r", ("en",), check_after_studies=0)
    path = plan(catalog, LearnerState(learner, mastery, mastery.copy(), never_on_a), options)
    check, study = path.steps[:2]
    assert check.kind is StepKind.SKILL_CHECK and check.check_skill_ids == ("a",)
    assert [r.code for r in check.reasons] == [ReasonCode.CONFIRM_PREREQUISITE]
    assert check.reasons[0].params == {"skill_id": "a", "module_id": "d-101"}
    assert study.module_id == "d-101" and study.position == 2
    state = LearnerState(learner, mastery, mastery.copy(), np.ones(3))
    assert [s.module_id for s in plan(catalog, state, options).steps][:2] == ["a-101", "d-101"]


def test_a_confirming_check_that_takes_the_only_step_ends_the_path_truthfully() -> None:
    """With one step allowed, the check takes it: the path says it stopped at its length limit,
    not that the role is reached, and projects no readiness the check does not bring."""
    catalog = _abd_catalog("bd")
    learner = Learner("kofi", languages=("en",), target_role_id="r")
    mastery = np.array([0.15, 0.9, 0.1])
    state = LearnerState(learner, mastery, mastery.copy(), np.array([np.nan, 1.0, 1.0]))
    path = plan(catalog, state, PlanOptions("r", ("en",), check_after_studies=0, max_steps=1))
    assert [s.kind for s in path.steps] == [StepKind.SKILL_CHECK]
    assert path.stop_reason is StopReason.MAX_STEPS
    assert path.readiness_after == path.readiness_now < 1.0


def test_a_role_skill_short_of_its_target_is_taught_not_implied() -> None:
    """The role needs a too: a module teaching it is not taken as mastered on b's evidence, so
    nothing that builds on it comes before it."""
    catalog = _abd_catalog("abd", a_minutes=600)
    learner = Learner("kofi", languages=("en",), target_role_id="r")
    mastery = np.array([0.15, 0.9, 0.1])
    state = LearnerState(learner, mastery, mastery.copy(), np.array([np.nan, 1.0, 1.0]))
    order = [s.module_id for s in plan(catalog, state, PlanOptions("r", ("en",), check_after_studies=0)).steps]
    assert order.index("a-101") < order.index("d-101")


def test_a_module_mastered_then_forgotten_is_a_review_not_a_failure() -> None:
    """Three studies of safety-101, mastered after the last one and faded since: it is simply
    retaught, with no teacher's support asked and no early stop."""
    catalog = build_catalog(*tiny_catalog())
    state, mastery = _state(0.4, {"safety-101": 3})
    peak = mastery.copy()
    peak[catalog.skill_index["safety"]] = 0.9
    faded = LearnerState(state.learner, mastery, peak, state.days_since_practice, state.studied)
    path = plan(catalog, faded, WELDER)
    assert path.steps[0].module_id == "safety-101"
    assert path.stop_reason is not StopReason.REPEATED_FAILURE and not path.blockers
