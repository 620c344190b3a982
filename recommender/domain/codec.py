"""Plain-dict forms of catalog entries and learners: the catalog JSON file format and the
store's row bodies. Field names match the .proto, so one vocabulary serves every edge.

Parsing never trusts types: a wrong type becomes InvalidInput naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recommender.domain.catalog import (
    Catalog,
    Module,
    Skill,
    SkillRequirement,
    SkillWeight,
    TargetRole,
)
from recommender.domain.learner import Learner
from recommender.errors import FieldViolation, InvalidInput

JsonDict = dict[str, Any]


def skill_to_dict(skill: Skill) -> JsonDict:
    return {"skill_id": skill.skill_id, "names": dict(skill.names), "domain": skill.domain}


def module_to_dict(module: Module) -> JsonDict:
    return {
        "module_id": module.module_id,
        "titles": dict(module.titles),
        "skills": [{"skill_id": s.skill_id, "weight": s.weight} for s in module.skills],
        "prerequisite_module_ids": list(module.prerequisite_module_ids),
        "languages": list(module.languages),
        "track": module.track,
        "difficulty": module.difficulty,
        "estimated_minutes": module.estimated_minutes,
        "min_chinese_level": module.min_chinese_level,
        "raises_chinese_level": module.raises_chinese_level,
    }


def role_to_dict(role: TargetRole) -> JsonDict:
    return {
        "role_id": role.role_id,
        "names": dict(role.names),
        "industry": role.industry,
        "requirements": [{"skill_id": r.skill_id, "level": r.level, "weight": r.weight} for r in role.requirements],
        "shortage_index": role.shortage_index,
    }


def catalog_to_dict(catalog: Catalog) -> JsonDict:
    return {
        "skills": [skill_to_dict(s) for s in catalog.skills.values()],
        "modules": [module_to_dict(m) for m in catalog.modules.values()],
        "roles": [role_to_dict(r) for r in catalog.roles.values()],
    }


class _Reader:
    """Typed access to an untrusted dict, collecting violations instead of raising at once."""

    def __init__(self, data: Any, path: str, problems: list[FieldViolation]) -> None:
        self.path = path
        self.problems = problems
        if not isinstance(data, Mapping):
            problems.append(FieldViolation(path, "must be an object"))
            data = {}
        self.data = data

    def _bad(self, key: str, what: str) -> None:
        self.problems.append(FieldViolation(f"{self.path}.{key}", f"must be {what}"))

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        if isinstance(value, str):
            return value
        self._bad(key, "a string")
        return default

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        self._bad(key, "a number")
        return default

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self._bad(key, "an integer")
        return default

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self._bad(key, "a list of strings")
        return ()

    def text_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key, {})
        if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return dict(value)
        self._bad(key, "an object of strings")
        return {}

    def objects(self, key: str) -> list[_Reader]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self._bad(key, "a list of objects")
            return []
        return [_Reader(v, f"{self.path}.{key}[{i}]", self.problems) for i, v in enumerate(value)]


def skill_from_reader(r: _Reader) -> Skill:
    return Skill(skill_id=r.text("skill_id"), names=r.text_map("names"), domain=r.text("domain"))


def module_from_reader(r: _Reader) -> Module:
    return Module(
        module_id=r.text("module_id"),
        titles=r.text_map("titles"),
        skills=tuple(SkillWeight(s.text("skill_id"), s.number("weight", 1.0)) for s in r.objects("skills")),
        prerequisite_module_ids=r.texts("prerequisite_module_ids"),
        languages=r.texts("languages"),
        track=r.text("track"),
        difficulty=r.number("difficulty", 0.5),
        estimated_minutes=r.integer("estimated_minutes", 60),
        min_chinese_level=r.integer("min_chinese_level", 0),
        raises_chinese_level=r.integer("raises_chinese_level", 0),
    )


def role_from_reader(r: _Reader) -> TargetRole:
    return TargetRole(
        role_id=r.text("role_id"),
        names=r.text_map("names"),
        industry=r.text("industry"),
        requirements=tuple(
            SkillRequirement(q.text("skill_id"), q.number("level", 1.0), q.number("weight", 1.0))
            for q in r.objects("requirements")
        ),
        shortage_index=r.number("shortage_index", 0.0),
    )


def catalog_parts_from_dict(
    data: Any,
) -> tuple[list[Skill], list[Module], list[TargetRole]]:
    """Parse the catalog JSON document ({"skills": [...], "modules": [...], "roles": [...]})."""
    problems: list[FieldViolation] = []
    root = _Reader(data, "catalog", problems)
    skills = [skill_from_reader(r) for r in root.objects("skills")]
    modules = [module_from_reader(r) for r in root.objects("modules")]
    roles = [role_from_reader(r) for r in root.objects("roles")]
    if problems:
        raise InvalidInput(problems)
    return skills, modules, roles


def learner_to_dict(learner: Learner) -> JsonDict:
    return {
        "learner_id": learner.learner_id,
        "cohort_id": learner.cohort_id,
        "country": learner.country,
        "languages": list(learner.languages),
        "program": learner.program,
        "target_role_id": learner.target_role_id,
        "chinese_level": learner.chinese_level,
        "weekly_minutes": learner.weekly_minutes,
        "attributes": dict(learner.attributes),
    }


def learner_from_dict(data: Any, path: str = "learner") -> Learner:
    problems: list[FieldViolation] = []
    r = _Reader(data, path, problems)
    learner = Learner(
        learner_id=r.text("learner_id"),
        cohort_id=r.text("cohort_id"),
        country=r.text("country"),
        languages=r.texts("languages"),
        program=r.text("program"),
        target_role_id=r.text("target_role_id"),
        chinese_level=r.integer("chinese_level"),
        weekly_minutes=r.integer("weekly_minutes"),
        attributes=r.text_map("attributes"),
    )
    if problems:
        raise InvalidInput(problems)
    return learner
