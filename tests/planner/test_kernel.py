"""The compiled step loop (planner/kernel.py) plans the numpy reference's paths, to the last bit:
thousands of random learners on random catalogs and on the demo catalog, planned both ways."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings

from recommender.domain.catalog import Catalog, Module, Skill, SkillRequirement, SkillWeight, TargetRole, build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.domain.learner import Learner
from recommender.domain.path import LearningPath, ReasonCode, StepKind, StopReason
from recommender.errors import PreconditionFailed
from recommender.kt.bkt import BKTModel
from recommender.planner import kernel
from recommender.planner import plan as planner
from recommender.planner.arrays import CatalogArrays, SkillParamArrays
from recommender.planner.plan import LearnerState, ModelOpinion, PlanInput, PlanOptions, plan_paths
from recommender.service.demo import demo_catalog_path
from tests.conftest import T0
from tests.planner.test_plan_properties import cohorts

LANGS = ["en", "fr", "zh", "ar"]


def assert_same(
    kernel_paths: list[LearningPath | PreconditionFailed], reference: list[LearningPath | PreconditionFailed]
) -> None:
    """Equal dataclasses: the same steps in the same order with the same reasons, stop reason,
    blockers and every float equal (== on floats: bit for bit but for the sign of zero)."""
    assert len(kernel_paths) == len(reference)
    for a, b in zip(kernel_paths, reference, strict=True):
        if isinstance(b, PreconditionFailed):
            assert isinstance(a, PreconditionFailed) and str(a) == str(b)
        else:
            assert a == b


def random_catalog(
    rng: np.random.Generator, n_skills: int, n_modules: int, n_roles: int, ladder: bool = False
) -> Catalog:
    """A random prerequisite DAG over random skills, languages and HSK minimums; with a module
    learning rate or two per skill, some modules teach up to 10 skills (numpy's pairwise sums).
    ladder: a Chinese ladder too (Module.raises_chinese_level), some of its rungs teaching the
    catalog's skills, so learners take the Chinese route to modules taught only in Chinese."""
    skills = [Skill(f"s{i:02d}") for i in range(n_skills)]
    modules = []
    if ladder:
        top = int(rng.integers(2, 7))
        for level in range(1, top + 1):
            skills.append(Skill(f"hsk{level}"))
            rung = [SkillWeight(f"hsk{level}")]
            if rng.random() < 0.3:
                rung.append(SkillWeight(f"s{int(rng.integers(n_skills)):02d}", 0.3))
            modules.append(
                Module(
                    module_id=f"zh{level}",
                    skills=tuple(rung),
                    prerequisite_module_ids=(f"zh{level - 1}",) if level > 1 and rng.random() < 0.8 else (),
                    languages=("zh",) if rng.random() < 0.7 else ("zh", "en"),
                    estimated_minutes=int(rng.choice([60, 120, 240])),
                    min_chinese_level=level - 1,
                    raises_chinese_level=level,
                )
            )
    for j in range(n_modules):
        width = int(rng.integers(1, 11)) if rng.random() < 0.1 else int(rng.integers(1, 4))
        taught = rng.choice(n_skills, size=min(width, n_skills), replace=False)
        prereqs: list[int] = rng.choice(j, size=min(j, int(rng.integers(0, 4))), replace=False).tolist() if j else []
        modules.append(
            Module(
                module_id=f"m{j:03d}",
                skills=tuple(SkillWeight(f"s{s:02d}", float(rng.choice([0.3, 0.6, 1.0]))) for s in taught),
                prerequisite_module_ids=tuple(f"m{p:03d}" for p in prereqs),
                languages=tuple(rng.choice(LANGS[:3], size=int(rng.integers(1, 4)), replace=False).tolist()),
                difficulty=float(rng.random()) if rng.random() < 0.5 else 0.5,  # exact ties among modules
                estimated_minutes=60 if rng.random() < 0.5 else int(rng.integers(10, 300)),
                min_chinese_level=int(rng.integers(0, 7)),
            )
        )
    roles = []
    for r in range(n_roles):
        size = int(rng.integers(1, min(n_skills, 12) + 1))
        required = rng.choice(n_skills, size=size, replace=False)
        roles.append(
            TargetRole(
                f"r{r}",
                requirements=tuple(
                    SkillRequirement(f"s{s:02d}", float(rng.uniform(0.3, 0.95)), float(rng.uniform(0.1, 2.0)))
                    for s in required
                ),
            )
        )
    return build_catalog(skills, modules, roles)


def random_inputs(rng: np.random.Generator, catalog: Catalog, n: int, with_model: bool) -> list[PlanInput]:
    """Learners with random mastery (some skills never practised: implication; some forgotten:
    reviews), studied modules (remediation; failed out at 3 attempts), languages, HSK levels,
    weekly minutes, exclusions, budgets, step limits, check settings, thresholds and, with a
    model, model opinions with a blend of their own (one model, so one blend, per call)."""
    n_skills, module_ids = len(catalog.skill_ids), list(catalog.module_ids)
    inputs = []
    blend = (float(rng.uniform(0.0, 1.5)), float(rng.uniform(0.0, 1.5)), float(rng.normal(0.0, 0.5)))
    for i in range(n):
        languages = tuple(rng.choice(LANGS, size=int(rng.integers(1, 4)), replace=False).tolist())
        learner = Learner(f"x{i}", languages=languages, chinese_level=int(rng.integers(0, 7)),
                          weekly_minutes=int(rng.choice([0, 120, 600])))  # fmt: skip
        mastery = rng.choice([rng.random(n_skills), np.full(n_skills, 0.15), rng.uniform(0.6, 1.0, n_skills)])
        days = np.where(rng.random(n_skills) < 0.4, np.nan, rng.uniform(1, 200, n_skills))
        peak = np.where(
            np.isnan(days), 0.0, np.maximum(mastery, rng.choice([mastery, rng.uniform(0.7, 1.0, n_skills)]))
        )
        studied = {str(m): int(rng.integers(1, 5)) for m in rng.choice(module_ids, size=int(rng.integers(0, 6)))}
        studies = rng.integers(0, 5, n_skills).astype(np.int64)
        state = LearnerState(learner, mastery, peak, days, studied, studies)
        options = PlanOptions(
            target_role_id=str(rng.choice(sorted(catalog.roles))),
            languages=languages,
            max_steps=int(rng.choice([1, 3, 10, 10, 30])),
            time_budget_minutes=int(rng.choice([0, 0, 0, 150, 600])),
            exclude_module_ids=frozenset(str(m) for m in rng.choice(module_ids, size=int(rng.integers(0, 3)))),
            locale=str(rng.choice(["en", "zh-CN"])),
            mastery_confidence=float(rng.choice([0.8, 0.8, 0.6])),
            mastery_is_level=bool(rng.random() >= 2 / 3),
            check_after_studies=int(rng.choice([0, 3, 3])),
            max_module_attempts=int(rng.choice([3, 3, 1, 0])),
        )
        model = ModelOpinion(rng.uniform(0.01, 0.99, len(module_ids)), "v1", *blend) if with_model else None
        inputs.append(PlanInput(state, options, model))
    return inputs


def both_ways(catalog: Catalog, inputs: list[PlanInput]) -> list[LearningPath | PreconditionFailed]:
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    compiled = plan_paths(arrays, kt, inputs, T0)
    assert_same(compiled, plan_paths(arrays, kt, inputs, T0, kernel=False))
    return compiled


def test_kernel_plans_the_reference_paths_for_thousands_of_random_learners() -> None:
    rng = np.random.default_rng(23)
    paths: list[LearningPath | PreconditionFailed] = []
    for world in range(32):
        ladder = world % 4 == 3
        catalog = random_catalog(rng, int(rng.integers(3, 30)), int(rng.integers(2, 60)), 3, ladder=ladder)
        paths += both_ways(catalog, random_inputs(rng, catalog, 100, with_model=world % 2 == 0))
    demo = build_catalog(*catalog_parts_from_dict(json.loads(demo_catalog_path().read_text())))
    for with_model in (False, True):
        paths += both_ways(demo, random_inputs(rng, demo, 600, with_model))
    # the learners reach every outcome the loop has, so none goes untested
    planned = [p for p in paths if isinstance(p, LearningPath)]
    assert len(paths) >= 3000 and len(planned) >= 2000
    stops = Counter(p.stop_reason for p in planned)
    assert set(stops) == set(StopReason), stops
    codes = Counter(r.code for p in planned for s in p.steps for r in s.reasons)
    codes.update(r.code for p in planned for r in p.blockers)
    for code in (ReasonCode.REMEDIATE, ReasonCode.REVIEW_DUE, ReasonCode.PREREQUISITE_FOR, ReasonCode.CHECK_DUE,
                 ReasonCode.CONFIRM_PREREQUISITE, ReasonCode.SIMILAR_LEARNERS_SUCCEEDED, ReasonCode.NEEDS_SUPPORT,
                 ReasonCode.CHINESE_LEVEL_BLOCKED, ReasonCode.MODULE_EXCLUDED,
                 ReasonCode.LANGUAGE_UNLOCK):  # fmt: skip
        assert codes[code], code
    assert any(s.kind is StepKind.SKILL_CHECK for p in planned for s in p.steps)
    assert any(isinstance(p, PreconditionFailed) for p in paths)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohorts())
def test_kernel_plans_the_reference_paths_for_generated_cohorts(cohort: tuple[Catalog, list[PlanInput]]) -> None:
    catalog, inputs = cohort
    both_ways(catalog, inputs)


def _pair_catalog(difficulty_b: float) -> Catalog:
    """Two modules alike but for module b's difficulty, each teaching one of the role's two skills."""
    skills = [Skill("a"), Skill("b")]
    modules = [
        Module("ma", skills=(SkillWeight("a"),), languages=("en",), difficulty=0.3),
        Module("mb", skills=(SkillWeight("b"),), languages=("en",), difficulty=difficulty_b),
    ]
    return build_catalog(skills, modules, [TargetRole("r", requirements=(SkillRequirement("a", 0.8),
                                                                            SkillRequirement("b", 0.8)))])  # fmt: skip


def test_a_near_tie_between_different_candidates_is_left_to_the_reference() -> None:
    """Scores a rounding apart rank by whose exp and log computed them: the kernel gives such a
    learner to the reference. An exact tie of equal inputs ranks alike either way, and stays."""
    for difficulty_b, ambiguous in ((0.3 + 1e-14, True), (0.3, False)):
        catalog = _pair_catalog(difficulty_b)
        arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
        ra = planner._RoleArrays.of(arrays, kt, catalog.roles["r"], 0.8, False)
        mastery = np.array([[0.2, 0.2, 1.0]])  # a, b and the sentinel skill
        found = kernel.plan_steps(
            planner._kernel_inputs(arrays, ra, 0.8), mastery, np.ones((1, 2), dtype=bool), np.zeros((1, 2), dtype=bool),
            np.zeros((1, 2), dtype=bool), None, 1.0, np.zeros((1, 2, 3)), np.zeros(1), np.zeros(1, dtype=np.int64),
            np.array([10]), np.zeros(1),
        )  # fmt: skip
        assert bool(found.ambiguous[0]) is ambiguous
        learner = Learner("x", languages=("en",))
        state = LearnerState(learner, mastery[0, :2], mastery[0, :2], np.full(2, 3.0))
        inputs = [
            PlanInput(state, PlanOptions("r", ("en",))),
            PlanInput(replace(state, learner=replace(learner, learner_id="y")), PlanOptions("r", ("en",), max_steps=1)),
        ]
        paths = both_ways(catalog, inputs)
        first = paths[0]
        assert isinstance(first, LearningPath) and [s.module_id for s in first.steps] == ["ma", "mb"]


def test_warming_loads_the_very_code_planning_runs() -> None:
    """warm_kernel() (a server calls it before serving) runs the kernel with a real batch's
    argument types: planning afterwards needs no other compilation."""
    assert planner.warm_kernel()
    signatures = list(kernel._plan_steps.signatures)  # type: ignore[attr-defined]
    catalog = _pair_catalog(0.5)
    state = LearnerState(Learner("x", languages=("en",)), np.full(2, 0.2), np.zeros(2), np.full(2, np.nan))
    model = ModelOpinion(np.full(2, 0.5), "v1")
    both_ways(
        catalog,
        [
            PlanInput(state, PlanOptions("r", ("en",), time_budget_minutes=90)),
            PlanInput(state, PlanOptions("r", ("en",)), model),
        ],
    )
    assert list(kernel._plan_steps.signatures) == signatures == signatures[:1]  # type: ignore[attr-defined]


def test_learners_on_the_chinese_route_are_planned_by_the_kernel() -> None:
    """A learner climbing the Chinese ladder is planned by the compiled loop itself (not left to
    the reference), with the level each step is taken at, and gets the reference's path; the
    route adds no compilation of its own."""
    from tests.planner.test_chinese_route import ladder_catalog

    assert planner.warm_kernel()
    signatures = list(kernel._plan_steps.signatures)  # type: ignore[attr-defined]
    catalog = ladder_catalog()
    arrays, kt = CatalogArrays.build(catalog), SkillParamArrays.build(catalog, BKTModel())
    inputs = []
    for i, (languages, level) in enumerate([(("en",), 0), (("fr", "zh"), 1), (("ar", "en"), 2), (("en",), 3)]):
        mastery = np.full(len(catalog.skill_ids), 0.1)
        state = LearnerState(Learner(f"x{i}", languages=languages, chinese_level=level), mastery, mastery.copy(),
                             np.full(len(mastery), np.nan))  # fmt: skip
        inputs.append(PlanInput(state, PlanOptions("welder", languages, max_steps=20)))
    start = planner._BatchStart.of(arrays, kt, inputs)
    assert start.route is not None
    climbing = (start.route.target > start.route.level_now).tolist()
    assert climbing == [True, True, True, False]
    size = len(inputs)
    out = planner._Out([[] for _ in inputs], [StopReason.MAX_STEPS] * size, np.full(size, -1), [[] for _ in inputs],
                       np.zeros(size))  # fmt: skip
    n_req = len(start.ra.req_idx)
    behind = np.zeros((size, len(start.ra.view.module_ids), n_req + 1))
    behind[:, :, :n_req] = planner._reachable_behind_teaches(start.ra.view, start.reachable)
    work = planner._Work(
        ids=np.arange(size), mastery=start.mastery, placed=np.zeros_like(start.allowed), implied=start.mastered_now,
        allowed=start.allowed, flagged=None, model_logit=None, behind_unplaced=behind, minutes_used=np.zeros(size),
        taken=np.zeros(size, dtype=np.int64), max_steps=np.full(size, 20), budget=np.zeros(size),
        level=start.level_now.copy(), gate=start.gate, route=start.route.modules, opened=start.route.opened,
        knowledge_weight=start.knowledge_weight,
    )  # fmt: skip
    ra, explain = start.ra, start.explain
    left = planner._compiled_steps(arrays, ra, explain, inputs, start.renderers, start.review_due, work, out)
    assert left is None  # no learner left to the reference
    for row in range(3):
        modules = [s.module_id for s in out.steps[row]]
        assert "zh-3" in modules and modules.index("zh-3") < modules.index("weld-201")
        unlocks = [r for s in out.steps[row] for r in s.reasons if r.code is ReasonCode.LANGUAGE_UNLOCK]
        assert unlocks and unlocks[-1].params["level_now"] == str(int(start.route.target[row]) - 1)
    both_ways(catalog, inputs)
    assert list(kernel._plan_steps.signatures) == signatures  # type: ignore[attr-defined]
