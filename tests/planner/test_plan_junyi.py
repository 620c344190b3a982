"""The planner's properties on a real prerequisite graph: the Junyi algebra area (cycle and
self-loops broken on import; tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.datasets.converters import convert_junyi
from recommender.domain.catalog import Catalog, build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.domain.learner import Learner
from recommender.errors import PreconditionFailed
from recommender.planner.plan import LearnerState, PlanOptions
from tests.planner.test_plan_properties import check_invariants, plan

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "junyi_algebra"


@pytest.fixture(scope="module")
def junyi(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    out = tmp_path_factory.mktemp("junyi")
    convert_junyi(FIXTURE, out)
    return build_catalog(*catalog_parts_from_dict(json.loads((out / "catalog.json").read_text(encoding="utf-8"))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_planner_invariants_on_the_junyi_graph(junyi: Catalog, data: st.DataObject) -> None:
    role_id = data.draw(st.sampled_from(sorted(junyi.roles)))
    n = len(junyi.skill_ids)
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mastery = np.where(rng.random(n) < data.draw(st.floats(0.0, 0.8)), rng.random(n), 0.1)
    learner = Learner("x", languages=("zh",), chinese_level=6, target_role_id=role_id)
    state = LearnerState(learner, mastery, mastery.copy(), np.full(n, 2.0))
    exclude = frozenset(data.draw(st.lists(st.sampled_from(list(junyi.module_ids)), max_size=5)))
    options = PlanOptions(role_id, ("zh",), max_steps=data.draw(st.integers(1, 30)), exclude_module_ids=exclude)
    try:
        path = plan(junyi, state, options)
    except PreconditionFailed:
        return
    check_invariants(junyi, state, options, path)
    assert plan(junyi, state, options) == path


def test_a_newcomer_gets_a_long_path_in_prerequisite_order(junyi: Catalog) -> None:
    role_id = max(junyi.roles, key=lambda r: len(junyi.roles[r].requirements))
    n = len(junyi.skill_ids)
    low = np.full(n, 0.1)
    state = LearnerState(Learner("new", languages=("zh",), chinese_level=6), low, np.zeros(n), np.full(n, np.nan))
    options = PlanOptions(role_id, ("zh",), max_steps=50)
    path = plan(junyi, state, options)
    assert len(path.steps) == 50
    check_invariants(junyi, state, options, path)
