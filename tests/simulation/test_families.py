"""World families: valid catalogs whose roles the sampled learners can reach, a split that keeps
held-out families apart, and dynamics the family parameters drive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recommender.domain.catalog import Catalog
from recommender.domain.learner import Learner
from recommender.simulation.families import (
    FAMILIES,
    RandomDag,
    WorldFamily,
    build_world,
    default_concept_graph_path,
    read_concept_graph,
    sample_family_learners,
    select_families,
)
from recommender.simulation.truth import DEMO_DYNAMICS, Dynamics, HiddenWorld, can_take, study, world_syllabus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GRAPH = read_concept_graph(default_concept_graph_path())


def _reachable(catalog: Catalog, learner: Learner, skill_id: str) -> bool:
    """Some module the learner can take teaches the skill, and so (recursively) do the
    prerequisites of one such module."""
    seen: set[str] = set()

    def takeable(module_id: str) -> bool:
        if module_id in seen:
            return True
        seen.add(module_id)
        module = catalog.modules[module_id]
        return can_take(module, learner) and all(takeable(p) for p in module.prerequisite_module_ids)

    return any(skill_id in m.skill_ids and takeable(m.module_id) for m in catalog.modules.values())


def _acyclic(parents: Mapping[str, tuple[str, ...]]) -> bool:
    """Kahn's algorithm: every node comes off once all its prerequisites have."""
    waiting = {n: len(ps) for n, ps in parents.items()}
    children: dict[str, list[str]] = {n: [] for n in parents}
    for n, ps in parents.items():
        for p in ps:
            children[p].append(n)
    ready = [n for n, k in waiting.items() if k == 0]
    done = 0
    while ready:
        n = ready.pop()
        done += 1
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    return done == len(parents)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_family_builds_a_valid_world_whose_roles_its_learners_can_reach(family: WorldFamily) -> None:
    f = family
    world = build_world(f, np.random.default_rng(1), GRAPH)
    catalog = world.catalog
    assert 88 <= len(catalog.skills) <= 200, "graphs of the size issue #20's catalogs had"
    assert len(catalog.topological_order) == len(catalog.modules), "acyclic: every module has its place"
    assert len(catalog.roles) >= 3
    for role in catalog.roles.values():
        assert len(role.requirements) >= 4
        assert all(0.5 <= r.level <= 0.8 for r in role.requirements)
    assert len(world.module_effect) == len(catalog.modules) and (world.module_effect > 0).all()
    for variant, base in world.variant_of.items():
        assert (
            catalog.modules[variant].languages == ("zh",)
            and catalog.modules[variant].skills == catalog.modules[base].skills
        )
    learners = sample_family_learners(f, world, 12, np.random.default_rng(2))
    assert {h.learner.learner_id for h in learners} == {f"learner-{i:04d}" for i in range(12)}
    for h in learners:
        role = catalog.roles[h.learner.target_role_id]
        assert all(_reachable(catalog, h.learner, r.skill_id) for r in role.requirements)
        syllabus = world_syllabus(world, role.role_id, h.learner)
        assert len(syllabus) == len({m.removesuffix("-zh") for m in syllabus}), "one module per concept"
    again = build_world(f, np.random.default_rng(1), GRAPH)
    assert again.catalog.modules == catalog.modules and (again.module_effect == world.module_effect).all()


def test_the_families_span_what_matters_with_three_tuning_and_three_held_out() -> None:
    assert len(select_families("tuning")) == 3 and len(select_families("held-out")) == 3
    assert select_families("all") == FAMILIES and len({f.name for f in FAMILIES}) == len(FAMILIES)
    assert select_families("deep-weak")[0].name == "deep-weak"
    with pytest.raises(ValueError, match="unknown family"):
        select_families("nope")
    assert {f.informative for f in FAMILIES} == {True, False}
    assert {f.informative for f in select_families("held-out")} == {True, False}
    priors = [f.prior_known[0] for f in FAMILIES]
    assert min(priors) == 0.0 and max(priors) >= 0.6, "from nothing known to most"
    assert {f.graph.skills_per_module for f in FAMILIES} == {1, 2, 3}
    dags = [f.graph for f in FAMILIES if isinstance(f.graph, RandomDag)]
    assert min(g.layers for g in dags) <= 5 and max(g.layers for g in dags) >= 14, "shallow to deep"
    assert any(not isinstance(f.graph, RandomDag) for f in FAMILIES), "a real prerequisite graph"
    assert min(f.forget_per_day[1] for f in FAMILIES) == 0.0 and max(f.forget_per_day[1] for f in FAMILIES) > 0.003
    spreads = [f.learn_rate[1] for f in FAMILIES]
    assert min(spreads) <= 0.1 and max(spreads) >= 0.5, "narrow to wide spread of learning speed"


def test_learners_know_from_nothing_to_most_as_their_family_says() -> None:
    by_name = {f.name: f for f in FAMILIES}
    known = {}
    for name in ("deep-weak", "deep-medium"):
        world = build_world(by_name[name], np.random.default_rng(3), GRAPH)
        learners = sample_family_learners(by_name[name], world, 30, np.random.default_rng(4))
        known[name] = float(np.mean([(h.initial_mastery >= 0.8).mean() for h in learners]))
    assert known["deep-weak"] == 0.0 and known["deep-medium"] > 0.5


def test_the_shipped_graph_is_the_fixtures_and_real_graphs_become_acyclic() -> None:
    shipped = read_concept_graph(default_concept_graph_path())
    table = read_concept_graph(FIXTURES / "junyi_algebra" / "junyi_Exercise_table.csv")
    assert shipped == table, "the excerpt is the fixture's graph, read the same way"
    with pytest.raises(ValueError, match="prerequisite graph"):
        build_world(select_families("junyi-weak")[0], np.random.default_rng(1))
    small = read_concept_graph(FIXTURES / "junyi" / "junyi_Exercise_table.csv")
    for graph in (shipped, small):
        for name, parents in graph.prerequisites.items():
            assert name not in parents
        assert _acyclic(graph.prerequisites), "cycles broken"


def test_a_score_after_the_study_reflects_what_the_study_taught() -> None:
    family = select_families("wide-strong")[0]
    world = build_world(family, np.random.default_rng(5))
    module_id = next(m for m in world.catalog.topological_order if not world.catalog.modules[m].prerequisite_module_ids)
    blank = np.zeros((1, len(world.catalog.skill_ids)))
    p_after, learned = study(world, module_id, blank, np.zeros(1), np.ones(1))
    before = HiddenWorld(world.catalog, world.module_effect, replace(family.dynamics, assessed_after_study=False))
    p_before, same = study(before, module_id, blank, np.zeros(1), np.ones(1))
    assert (learned == same).all() and learned.sum() > 0
    assert p_after[0] > p_before[0], "the study's learning shows in an end-of-module score"
    assert Dynamics() == DEMO_DYNAMICS, "the demo world keeps its own dynamics"
