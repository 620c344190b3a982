"""Chinese as a route (issue #24): the planner climbs the Chinese ladder when the role needs modules
taught only in Chinese above the learner's HSK level, and reads the level from results too."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.domain.catalog import Catalog, Module, Skill, SkillRequirement, SkillWeight, TargetRole, build_catalog
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, ReasonCode, StopReason
from recommender.errors import InvalidInput
from recommender.kt.bkt import BKTModel
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import LearnerState, PlanInput, PlanOptions, plan_path, plan_paths
from tests.conftest import T0


def ladder_catalog(*, top: bool = True) -> Catalog:
    """HSK 1 and 2 taught in English and French, HSK 3 in Chinese at HSK 2; welding's foundations
    in English and French, its advanced module only in Chinese at HSK 3. `top=False`: no HSK 3."""
    skills = [Skill(s) for s in ("zh1", "zh2", "zh3", "weld", "weld-adv")]
    modules = [
        Module("zh-1", skills=(SkillWeight("zh1"),), languages=("en", "fr", "zh"), raises_chinese_level=1),
        Module("zh-2", skills=(SkillWeight("zh2"),), prerequisite_module_ids=("zh-1",), languages=("en", "fr", "zh"),
               min_chinese_level=1, raises_chinese_level=2),
        Module("weld-101", skills=(SkillWeight("weld"),), languages=("en", "fr")),
        Module("weld-201", skills=(SkillWeight("weld-adv"),), prerequisite_module_ids=("weld-101",),
               languages=("zh",), min_chinese_level=3),
    ]  # fmt: skip
    if top:
        modules.append(
            Module(
                "zh-3",
                skills=(SkillWeight("zh3"),),
                prerequisite_module_ids=("zh-2",),
                languages=("zh",),
                min_chinese_level=2,
                raises_chinese_level=3,
            )
        )
    role = TargetRole("welder", requirements=(SkillRequirement("weld", 0.6), SkillRequirement("weld-adv", 0.6)))
    return build_catalog(skills, modules, [role])


def plan(
    catalog: Catalog, languages: tuple[str, ...], level: int, *, route: bool = True, **known: float
) -> LearningPath:
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    mastery = np.full(len(catalog.skill_ids), 0.1)
    for skill_id, value in known.items():
        mastery[catalog.skill_index[skill_id]] = value
    state = LearnerState(Learner("x", languages=languages, chinese_level=level), mastery, mastery.copy(),
                         np.full(len(mastery), math.nan))  # fmt: skip
    options = PlanOptions("welder", languages, max_steps=20, chinese_route=route)
    return plan_path(arrays, kt, state, options, T0)


def test_a_learner_without_chinese_climbs_the_ladder_to_the_module_taught_only_in_chinese() -> None:
    path = plan(ladder_catalog(), ("fr",), 0)
    ids = [s.module_id for s in path.steps]
    assert path.stop_reason is StopReason.ROLE_READY and not path.blockers and not path.unreachable_skill_ids
    assert ids.index("zh-1") < ids.index("zh-2") < ids.index("zh-3") < ids.index("weld-201")
    unlock = {s.module_id: s.reasons[0] for s in path.steps if s.module_id.startswith("zh-")}
    assert all(r.code is ReasonCode.LANGUAGE_UNLOCK for r in unlock.values())
    # the level before each step counts the ladder modules placed earlier in the same path
    assert [unlock[m].params for m in ("zh-1", "zh-2", "zh-3")] == [
        {"module_id": "weld-201", "level_needed": "3", "level_now": str(level)} for level in (0, 1, 2)
    ]
    assert "HSK 3" in unlock["zh-3"].text and "HSK 2" in unlock["zh-3"].text
    language = [r for r in path.steps[ids.index("weld-201")].reasons if r.code is ReasonCode.LANGUAGE_MATCH]
    assert language[0].params == {"language": "zh"}, "followed in Chinese, reached on the ladder"


def test_the_declared_level_and_the_results_both_count() -> None:
    declared = plan(ladder_catalog(), ("fr", "zh"), 2)
    ids = [s.module_id for s in declared.steps]
    assert ids.index("zh-3") < ids.index("weld-201")
    # the ladder's modules are prerequisites like any other: taught until results show them
    assert ids.index("zh-1") < ids.index("zh-2") < ids.index("zh-3")
    assert all(r.params["level_now"] == "2" for s in declared.steps for r in s.reasons
               if r.code is ReasonCode.LANGUAGE_UNLOCK), "the level comes from HSK 2 on"  # fmt: skip
    shown = [s.module_id for s in plan(ladder_catalog(), ("fr",), 0, zh1=0.95, zh2=0.95, zh3=0.95).steps]
    assert not any(m.startswith("zh-") for m in shown), "a mastered HSK 3 module shows HSK 3"
    assert "weld-201" in shown


def test_without_the_route_or_without_a_ladder_high_enough_the_blocker_is_named() -> None:
    blind = plan(ladder_catalog(), ("fr", "zh"), 2, route=False)
    assert blind.stop_reason is StopReason.ROLE_OUT_OF_REACH and blind.unreachable_skill_ids == ("weld-adv",)
    assert [(r.code, r.params["level_needed"], r.params["level_now"]) for r in blind.blockers] == [
        (ReasonCode.CHINESE_LEVEL_BLOCKED, "3", "2")
    ]
    assert not any(r.code is ReasonCode.LANGUAGE_UNLOCK for s in blind.steps for r in s.reasons)
    short = plan(ladder_catalog(top=False), ("fr",), 0)
    assert short.stop_reason is StopReason.ROLE_OUT_OF_REACH
    assert [r.code for r in short.blockers] == [ReasonCode.LANGUAGE_BLOCKED], "no ladder reaches HSK 3"
    assert not any(s.module_id.startswith("zh-") for s in short.steps), "a ladder that opens nothing is not climbed"


def test_a_batch_with_and_without_routes_plans_each_learner_as_alone() -> None:
    catalog = ladder_catalog()
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    inputs = []
    for i, (languages, level) in enumerate([(("fr",), 0), (("en", "zh"), 3), (("fr", "zh"), 2), (("en",), 1)]):
        mastery = np.full(len(catalog.skill_ids), 0.1 + 0.05 * i)
        state = LearnerState(Learner(f"x{i}", languages=languages, chinese_level=level), mastery, mastery.copy(),
                             np.full(len(mastery), math.nan))  # fmt: skip
        inputs.append(PlanInput(state, PlanOptions("welder", languages, max_steps=6)))
    together = plan_paths(arrays, kt, inputs, T0)
    assert together == [plan_paths(arrays, kt, [x], T0)[0] for x in inputs]


def test_a_module_raises_a_level_above_the_one_it_needs() -> None:
    bad = Module("zh-x", skills=(SkillWeight("s"),), languages=("zh",), min_chinese_level=3, raises_chinese_level=3)
    with pytest.raises(InvalidInput) as caught:
        build_catalog([Skill("s")], [bad], [])
    assert [v.field for v in caught.value.violations] == ["modules[0].raises_chinese_level"]
    with pytest.raises(InvalidInput):
        build_catalog([Skill("s")], [Module("zh-y", skills=(SkillWeight("s"),), languages=("zh",),
                                            raises_chinese_level=7)], [])  # fmt: skip
