"""Reason texts in every language the catalog teaches.

The texts are gettext messages: their English source is MESSAGES below, and each locale's
translation is a Babel-managed catalog, locales/<locale>/LC_MESSAGES/reasons.po (`make messages`
extracts and merges them). The .po files are compiled to .mo in memory on first use, so a fresh
checkout needs no build step and no compiled file can go stale. Plural forms follow each .po's
Plural-Forms header; numbers, percentages, lists and language names are formatted per locale by
Babel (CLDR data); skill, module and role names come from the catalog's own names in the locale,
else its English names.
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

from recommender.domain.catalog import Catalog
from recommender.domain.path import Reason, ReasonCode

DOMAIN = "reasons"
LOCALES_DIR = Path(__file__).resolve().parent / "locales"
SOURCE_LOCALE = "en"  # the language of the msgids: it needs no catalog of its own


@dataclass(frozen=True)
class Message:
    """One reason's text: a gettext message in the reason code's context; a plural message picks
    its form by the integer parameter `count`."""

    context: str
    singular: str
    plural: str = ""
    count: str = ""


def _text(context: str, singular: str) -> Message:
    """A message without plural forms (extracted by `make messages` as _text:1c,2)."""
    return Message(context, singular)


def _plural(context: str, singular: str, plural: str, count: str) -> Message:
    """A message with plural forms chosen by the parameter `count` (extracted as _plural:1c,2,3)."""
    return Message(context, singular, plural, count)


# Written for a learner: short, plain, addressed to them. Placeholders are str.format fields; a
# translation keeps every field of its msgid (a test holds it).
MESSAGES: dict[ReasonCode, Message] = {
    ReasonCode.SKILL_GAP: _text("skill_gap", "Builds {skill}: you are at {mastery}, and {required} is needed."),
    ReasonCode.PREREQUISITE_FOR: _text("prerequisite_for", "Opens the way to {module}, which you need next."),
    ReasonCode.ROLE_REQUIRES: _text("role_requires", "The {role} role needs {skill}."),
    ReasonCode.SIMILAR_LEARNERS_SUCCEEDED: _text(
        "similar_learners_succeeded",
        "Learners like you do well in this module ({similar_learners_success} pass); "
        "your expected success is {expected_success}.",
    ),
    ReasonCode.REVIEW_DUE: _plural(
        "review_due",
        "Review: you last practiced {skill} {days} day ago, and it has faded.",
        "Review: you last practiced {skill} {days} days ago, and it has faded.",
        "days_since_practice",
    ),
    ReasonCode.LANGUAGE_MATCH: _text("language_match", "Taught in {language_name}."),
    ReasonCode.CHECK_DUE: _plural(
        "check_due",
        "Check {skill}: you studied it {studies} time since your last check and are still at {mastery} "
        "of the {required} needed. A short test shows whether you need more study.",
        "Check {skill}: you studied it {studies} times since your last check and are still at {mastery} "
        "of the {required} needed. A short test shows whether you need more study.",
        "studies",
    ),
    ReasonCode.REMEDIATE: _plural(
        "remediate",
        "Take {module} again: after {attempts} attempt, {skill} is at {mastery} of the {required} needed, "
        "and what comes next builds on it.",
        "Take {module} again: after {attempts} attempts, {skill} is at {mastery} of the {required} needed, "
        "and what comes next builds on it.",
        "attempts",
    ),
    ReasonCode.NEEDS_SUPPORT: _plural(
        "needs_support",
        "You have taken {module} {attempts} time and {skill} is not mastered yet, and what comes next needs it: "
        "take it again with a teacher's support.",
        "You have taken {module} {attempts} times and {skill} is not mastered yet, and what comes next needs it: "
        "take it again with a teacher's support.",
        "attempts",
    ),
    ReasonCode.LANGUAGE_BLOCKED: _text(
        "language_blocked",
        "{skill} is out of reach for now: {module} is taught only in {languages}.",
    ),
    ReasonCode.CHINESE_LEVEL_BLOCKED: _text(
        "chinese_level_blocked",
        "{skill} is out of reach for now: {module} is taught in Chinese and needs HSK {level_needed}; "
        "your level is HSK {level_now}.",
    ),
    ReasonCode.NOT_IN_CATALOG: _text(
        "not_in_catalog", "{skill} is out of reach for now: no module in the catalog teaches it yet."
    ),
    ReasonCode.MODULE_EXCLUDED: _text(
        "module_excluded", "{skill} is out of reach in this request: {module} was excluded."
    ),
    ReasonCode.CONFIRM_PREREQUISITE: _text(
        "confirm_prerequisite",
        "Check {skill}: {module} builds on it, and what you have shown suggests you know it. "
        "A short test confirms it first.",
    ),
    ReasonCode.LANGUAGE_UNLOCK: _text(
        "language_unlock",
        "Raises your Chinese toward {module}, which is taught in Chinese at HSK {level_needed}; "
        "your level is HSK {level_now}.",
    ),
}

# each reason's parameters, in the order Renderer.reason takes their values
PARAMETERS: dict[ReasonCode, tuple[str, ...]] = {
    ReasonCode.SKILL_GAP: ("skill_id", "mastery", "required"),
    ReasonCode.PREREQUISITE_FOR: ("module_id",),
    ReasonCode.ROLE_REQUIRES: ("role_id", "skill_id"),
    ReasonCode.SIMILAR_LEARNERS_SUCCEEDED: ("expected_success", "similar_learners_success"),
    ReasonCode.REVIEW_DUE: ("skill_id", "days_since_practice"),
    ReasonCode.LANGUAGE_MATCH: ("language",),
    ReasonCode.CHECK_DUE: ("skill_id", "studies", "mastery", "required"),
    ReasonCode.REMEDIATE: ("module_id", "attempts", "skill_id", "mastery", "required"),
    ReasonCode.NEEDS_SUPPORT: ("module_id", "attempts", "skill_id"),
    ReasonCode.LANGUAGE_BLOCKED: ("skill_id", "module_id", "languages"),
    ReasonCode.CHINESE_LEVEL_BLOCKED: ("skill_id", "module_id", "level_needed", "level_now"),
    ReasonCode.NOT_IN_CATALOG: ("skill_id",),
    ReasonCode.MODULE_EXCLUDED: ("skill_id", "module_id"),
    ReasonCode.CONFIRM_PREREQUISITE: ("skill_id", "module_id"),
    ReasonCode.LANGUAGE_UNLOCK: ("module_id", "level_needed", "level_now"),
}

# parameters that are shares in [0, 1], shown as percentages; counts, shown as integers
_SHARES = frozenset({"mastery", "required", "expected_success", "similar_learners_success"})
_COUNTS = frozenset({"studies", "attempts", "days_since_practice", "level_needed", "level_now"})


def supported_locales() -> frozenset[str]:
    """The locales reason texts are written in: the source language and every shipped catalog."""
    return _supported()


@functools.cache
def _supported() -> frozenset[str]:
    shipped = {p.parent.parent.name for p in LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return frozenset({SOURCE_LOCALE, *shipped})


def primary_subtag(tag: str) -> str:
    """'zh-CN', 'zh_Hans' -> 'zh'."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


def locale_key(locale: str) -> str:
    """'zh-CN', 'zh_Hans' -> 'zh'; locales without reason texts -> 'en'."""
    primary = primary_subtag(locale)
    return primary if primary in _supported() else SOURCE_LOCALE


def resolve_locale(requested: str, languages: Sequence[str]) -> str:
    """The locale of a path's texts: the requested one, else the learner's first language (the
    first of their languages, in preference order, that reason texts are written in), else en."""
    for tag in (requested, *languages):
        if tag and primary_subtag(tag) in _supported():
            return primary_subtag(tag)
    return SOURCE_LOCALE


@functools.cache
def translations(key: str) -> gettext.NullTranslations:
    """The locale's compiled catalog (fuzzy entries left out, so they fall back to the source)."""
    if key == SOURCE_LOCALE or key not in _supported():
        return gettext.NullTranslations()
    with (LOCALES_DIR / key / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=key, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return Translations(fp=mo, domain=DOMAIN)


@functools.lru_cache(maxsize=1024)
def template(key: str, code: ReasonCode, count: int = 1) -> str:
    """The reason's str.format template in the locale, in the plural form for `count`."""
    message, t = MESSAGES[code], translations(key)
    if message.plural:
        return t.npgettext(message.context, message.singular, message.plural, count)
    return t.pgettext(message.context, message.singular)


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
        cache_key = (code._name_, *values)  # an Enum's hash runs Python code; its name's does not
        found = self._rendered.get(cache_key)
        if found is None:
            if len(self._rendered) >= RENDERED_LIMIT:
                self._rendered.clear()
            params = dict(zip(PARAMETERS[code], values, strict=True))
            found = self._rendered[cache_key] = self._render(code, params)
        return found

    def _render(self, code: ReasonCode, params: Mapping[str, str]) -> Reason:
        catalog, key = self.catalog, self.key
        values: dict[str, str] = {}
        for name, value in params.items():
            if name in _SHARES:
                values[name] = _percent(value, key)
            elif name in _COUNTS:
                values[name] = _decimal(value, key)
        if "days_since_practice" in values:
            values["days"] = values["days_since_practice"]
        if "skill_id" in params:
            values["skill"] = _name(catalog.skills[params["skill_id"]].names, key, params["skill_id"])
        if "module_id" in params:
            values["module"] = _name(catalog.modules[params["module_id"]].titles, key, params["module_id"])
        if "role_id" in params:
            values["role"] = _name(catalog.roles[params["role_id"]].names, key, params["role_id"])
        if "language" in params:
            values["language_name"] = language_name(params["language"], key)
        if "languages" in params:
            names = [language_name(x, key) for x in params["languages"].split(";") if x]
            values["languages"] = format_list(names, locale=key)
        message = MESSAGES[code]
        count = int(float(params[message.count])) if message.plural else 1
        return Reason(code=code, params=params, text=template(key, code, count).format(**values))


@functools.lru_cache(maxsize=4096)
def _percent(value: str, key: str) -> str:
    """A share's text in the locale; shares come with two decimals, so a cohort formats each once
    (Babel's formatting costs more than the rest of a reason)."""
    return format_percent(float(value), locale=key)


@functools.lru_cache(maxsize=4096)
def _decimal(value: str, key: str) -> str:
    return format_decimal(int(float(value)), locale=key)


def language_name(tag: str, key: str) -> str:
    """A language's name in the locale (CLDR), else the tag itself."""
    return _language_names(key).get(primary_subtag(tag), tag)


@functools.cache
def _language_names(key: str) -> Mapping[str, str]:
    names: Mapping[str, str] = Locale.parse(key).languages
    return names


def _name(names: Mapping[str, str], locale: str, fallback: str) -> str:
    return names.get(locale) or names.get("en") or fallback


# markers for `make messages` (pybabel extract -k _text:1c,2 -k _plural:1c,2,3)
EXTRACTION_KEYWORDS: dict[str, tuple[int | tuple[int, str], ...]] = {
    "_text": ((1, "c"), 2),
    "_plural": ((1, "c"), 2, 3),
}
