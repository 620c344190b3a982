"""Reason texts in the request's locale: zh and en complete, everything else falls back to en."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from recommender.domain.catalog import Catalog
from recommender.domain.path import Reason, ReasonCode

TEMPLATES: dict[str, dict[ReasonCode, str]] = {
    "en": {
        ReasonCode.SKILL_GAP: "Closes a gap in {skill}: mastery {mastery} of the {required} required.",
        ReasonCode.PREREQUISITE_FOR: "Unlocks {module}, which you need next.",
        ReasonCode.ROLE_REQUIRES: "{role} requires {skill}.",
        ReasonCode.SIMILAR_LEARNERS_SUCCEEDED: (
            "Learners like you succeeded at this module (expected success {expected_success})."
        ),
        ReasonCode.REVIEW_DUE: "Review: {skill} was last practiced {days} days ago and has faded.",
        ReasonCode.LANGUAGE_MATCH: "Taught in {language_name}.",
        ReasonCode.CHECK_DUE: (
            "Check {skill}: studied {studies} times with no check in between, and the estimated mastery is "
            "still {mastery} of the {required} required; a short assessment shows whether more study is needed."
        ),
        ReasonCode.REMEDIATE: (
            "Take {module} again: after {attempts} attempt(s), {skill} is at {mastery} of the {required} needed, "
            "and what comes next builds on it."
        ),
        ReasonCode.NEEDS_SUPPORT: (
            "{module} was taken {attempts} times and {skill} is still not mastered, and nothing else you can take "
            "leads on without it: take it again with a teacher's support."
        ),
        ReasonCode.CONFIRM_PREREQUISITE: (
            "Check {skill}: {module} builds on it, and what you have shown suggests you know it; "
            "a short check confirms it first."
        ),
    },
    "zh": {
        ReasonCode.SKILL_GAP: "弥补{skill}的差距：当前掌握度{mastery}，要求{required}。",
        ReasonCode.PREREQUISITE_FOR: "学完后可解锁下一步需要的{module}。",
        ReasonCode.ROLE_REQUIRES: "{role}岗位要求掌握{skill}。",
        ReasonCode.SIMILAR_LEARNERS_SUCCEEDED: "与你相似的学员在本模块表现良好（预计成功率{expected_success}）。",
        ReasonCode.REVIEW_DUE: "复习：{skill}已有{days}天未练习，掌握度有所下降。",
        ReasonCode.LANGUAGE_MATCH: "使用{language_name}授课。",
        ReasonCode.CHECK_DUE: (
            "检测{skill}：已学习{studies}次而未做检测，掌握度估计仍为{mastery}（要求{required}）；"
            "做一次简短测评，确认是否还需继续学习。"
        ),
        ReasonCode.REMEDIATE: (
            "重学{module}：已学习{attempts}次，{skill}掌握度为{mastery}（需要{required}），后续内容以此为基础。"
        ),
        ReasonCode.NEEDS_SUPPORT: (
            "{module}已学习{attempts}次，{skill}仍未掌握，而你目前可选的其他模块都需要它：请在老师的帮助下再学一次。"
        ),
        ReasonCode.CONFIRM_PREREQUISITE: (
            "检测{skill}：{module}以它为基础，你已展示的能力表明你很可能已掌握；先做简短检测确认。"
        ),
    },
}

# each reason's parameters, in the order Renderer.reason takes their values
PARAMETERS: dict[ReasonCode, tuple[str, ...]] = {
    ReasonCode.SKILL_GAP: ("skill_id", "mastery", "required"),
    ReasonCode.PREREQUISITE_FOR: ("module_id",),
    ReasonCode.ROLE_REQUIRES: ("role_id", "skill_id"),
    ReasonCode.SIMILAR_LEARNERS_SUCCEEDED: ("expected_success",),
    ReasonCode.REVIEW_DUE: ("skill_id", "days_since_practice"),
    ReasonCode.LANGUAGE_MATCH: ("language",),
    ReasonCode.CHECK_DUE: ("skill_id", "studies", "mastery", "required"),
    ReasonCode.REMEDIATE: ("module_id", "attempts", "skill_id", "mastery", "required"),
    ReasonCode.NEEDS_SUPPORT: ("module_id", "attempts", "skill_id"),
    ReasonCode.CONFIRM_PREREQUISITE: ("skill_id", "module_id"),
}

LANGUAGE_NAMES: dict[str, dict[str, str]] = {
    "en": {"zh": "Chinese", "en": "English", "fr": "French", "ar": "Arabic", "th": "Thai",
           "vi": "Vietnamese", "id": "Indonesian", "ru": "Russian"},
    "zh": {"zh": "中文", "en": "英语", "fr": "法语", "ar": "阿拉伯语", "th": "泰语", "vi": "越南语",
           "id": "印尼语", "ru": "俄语"},
}  # fmt: skip


def locale_key(locale: str) -> str:
    """'zh-CN', 'zh_Hans' -> 'zh'; unknown locales -> 'en'."""
    primary = locale.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in TEMPLATES else "en"


RENDERED_LIMIT = 50_000


@dataclass(frozen=True)
class Renderer:
    """Reason texts for one catalog in one locale (resolved once per plan, not once per reason).
    Rendered reasons are kept: a cohort's paths repeat the same (code, parameters) pairs, and
    formatting each pair once keeps text out of the planning loop. Reasons are frozen, so sharing
    one is safe."""

    catalog: Catalog
    key: str
    _rendered: dict[tuple[object, ...], Reason] = field(default_factory=dict, compare=False, repr=False)

    def reason(self, code: ReasonCode, *values: str) -> Reason:
        """The reason with PARAMETERS[code] set to `values`, in that order."""
        cache_key = (code, *values)
        found = self._rendered.get(cache_key)
        if found is None:
            if len(self._rendered) >= RENDERED_LIMIT:
                self._rendered.clear()
            params = dict(zip(PARAMETERS[code], values, strict=True))
            found = self._rendered[cache_key] = self._render(code, params)
        return found

    def _render(self, code: ReasonCode, params: Mapping[str, str]) -> Reason:
        catalog, key = self.catalog, self.key
        values = dict(params)
        if "skill_id" in params:
            values["skill"] = _name(catalog.skills[params["skill_id"]].names, key, params["skill_id"])
        if "module_id" in params:
            values["module"] = _name(catalog.modules[params["module_id"]].titles, key, params["module_id"])
        if "role_id" in params:
            values["role"] = _name(catalog.roles[params["role_id"]].names, key, params["role_id"])
        if "language" in params:
            values["language_name"] = LANGUAGE_NAMES[key].get(params["language"], params["language"])
        values.setdefault("days", params.get("days_since_practice", ""))
        return Reason(code=code, params=params, text=TEMPLATES[key][code].format(**values))


def _name(names: Mapping[str, str], locale: str, fallback: str) -> str:
    return names.get(locale) or names.get("en") or fallback
