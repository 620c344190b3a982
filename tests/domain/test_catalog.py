"""Catalog validation: nothing invalid ever becomes a Catalog."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from recommender.domain.catalog import (
    Module,
    SkillRequirement,
    SkillWeight,
    build_catalog,
    find_cycle,
    merge_catalog,
)
from recommender.domain.codec import catalog_parts_from_dict, catalog_to_dict
from recommender.errors import InvalidInput
from recommender.service.demo import demo_catalog_path
from tests.conftest import tiny_catalog


def fields(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {v.field: v.description for v in exc.value.violations}


def test_tiny_catalog_is_valid_and_ordered() -> None:
    catalog = build_catalog(*tiny_catalog())
    order = catalog.topological_order
    assert order.index("safety-101") < order.index("welding-101") < order.index("welding-301")
    assert catalog.module_skill_weights.shape == (5, 4)


def test_cycle_is_rejected_naming_its_modules() -> None:
    skills, modules, roles = tiny_catalog()
    modules[0] = replace(modules[0], prerequisite_module_ids=("inspection-101",))
    with pytest.raises(InvalidInput) as exc:
        build_catalog(skills, modules, roles)
    message = fields(exc)["modules"]
    assert "prerequisite cycle" in message
    for m in ("safety-101", "welding-101", "inspection-101"):
        assert m in message


def test_unknown_references_and_bad_levels_are_all_reported() -> None:
    skills, modules, roles = tiny_catalog()
    modules.append(Module("x-1", skills=(SkillWeight("nope", 1.5),), prerequisite_module_ids=("ghost",),
                          languages=("en",), difficulty=1.5))  # fmt: skip
    roles[0] = replace(roles[0], requirements=(SkillRequirement("welding", 1.2), SkillRequirement("ghost", 0.5)))
    with pytest.raises(InvalidInput) as exc:
        build_catalog(skills, modules, roles)
    got = fields(exc)
    assert "unknown skill 'nope'" in got["modules[5].skills[0].skill_id"]
    assert got["modules[5].skills[0].weight"] == "must be in (0, 1]"
    assert "unknown module 'ghost'" in got["modules[5].prerequisite_module_ids[0]"]
    assert got["modules[5].difficulty"] == "must be in [0, 1]"
    assert got["roles[0].requirements[0].level"] == "must be in (0, 1]"
    assert "unknown skill 'ghost'" in got["roles[0].requirements[1].skill_id"]


def test_self_loop_and_duplicates_are_rejected() -> None:
    skills, modules, roles = tiny_catalog()
    modules[0] = replace(modules[0], prerequisite_module_ids=("safety-101",))
    with pytest.raises(InvalidInput) as exc:
        build_catalog(skills + skills[:1], modules, roles)
    got = fields(exc)
    assert got["skills"] == "duplicate id 'safety'"
    assert got["modules[0].prerequisite_module_ids[0]"] == "a module cannot require itself"


def test_find_cycle_on_acyclic_graph_is_empty() -> None:
    assert find_cycle(build_catalog(*tiny_catalog()).modules) == []


def test_merge_replaces_by_id_and_bumps_revision() -> None:
    catalog = build_catalog(*tiny_catalog(), revision=3)
    skills, modules, _ = tiny_catalog()
    easier = replace(modules[1], difficulty=0.1)
    merged = merge_catalog(catalog, [], [easier], [], replace=False)
    assert merged.revision == 4 and merged.modules["welding-101"].difficulty == 0.1
    assert len(merged.modules) == 5
    with pytest.raises(InvalidInput):
        merge_catalog(catalog, skills, modules[1:2], [], replace=True)  # safety-101 missing


def test_json_round_trip_and_type_errors() -> None:
    catalog = build_catalog(*tiny_catalog())
    again = build_catalog(*catalog_parts_from_dict(json.loads(json.dumps(catalog_to_dict(catalog)))))
    assert again.modules == catalog.modules and again.roles == catalog.roles
    with pytest.raises(InvalidInput) as exc:
        catalog_parts_from_dict({"skills": [{"skill_id": 3}], "modules": {}})
    got = fields(exc)
    assert got["catalog.skills[0].skill_id"] == "must be a string"
    assert got["catalog.modules"] == "must be a list of objects"


def test_demo_catalog_meets_the_brief() -> None:
    data = json.loads(demo_catalog_path().read_text(encoding="utf-8"))
    catalog = build_catalog(*catalog_parts_from_dict(data))
    assert len(catalog.skills) >= 60 and len(catalog.modules) >= 120 and len(catalog.roles) >= 10
    languages = {lang for m in catalog.modules.values() for lang in m.languages}
    assert {"zh", "en", "fr", "ar", "th", "vi", "id", "ru"} <= languages
    assert sum(1 for m in catalog.modules.values() if m.prerequisite_module_ids) >= 100
    tracks = {m.track for m in catalog.modules.values()}
    assert {"chinese", "manufacturing", "automation", "ecommerce", "new-energy", "cross-cultural"} <= tracks
    ecommerce = catalog.roles["ecommerce-operations-manager"]
    weight = {r.skill_id: r.weight for r in ecommerce.requirements}
    assert weight["content-marketing"] > weight["ecom-analytics"] > weight["supply-chain"] > weight["live-streaming"]
