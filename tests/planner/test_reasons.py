"""Issue #24: every reason code renders, with its parameters, in every language the catalog teaches,
from the gettext catalogs (no missing message, no English where a translation exists)."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from recommender.domain.catalog import Catalog, build_catalog
from recommender.domain.path import ReasonCode
from recommender.planner.reasons import (
    EXTRACTION_KEYWORDS,
    LOCALES_DIR,
    MESSAGES,
    PARAMETERS,
    Renderer,
    resolve_locale,
    supported_locales,
)
from tests.conftest import tiny_catalog

CATALOG_LANGUAGES = {"zh", "en", "fr", "ar", "th", "vi", "id", "ru"}
TRANSLATED = sorted(CATALOG_LANGUAGES - {"en"})
# counts that reach every plural form of every locale (ar has six: 0, 1, 2, 3-10, 11-99, 100-102)
COUNTS = ("0", "1", "2", "3", "5", "11", "21", "101")
SAMPLE = {
    "skill_id": "welding",
    "module_id": "welding-101",
    "role_id": "welder",
    "mastery": "0.45",
    "required": "0.80",
    "expected_success": "0.59",
    "similar_learners_success": "0.81",
    "language": "ar",
    "languages": "en;zh",
    "level_needed": "4",
    "level_now": "2",
}
COUNTED = {"days_since_practice", "studies", "attempts"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog(*tiny_catalog())


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def rendered(catalog: Catalog, key: str, code: ReasonCode, count: str) -> str:
    values = [count if p in COUNTED else SAMPLE[p] for p in PARAMETERS[code]]
    return Renderer(catalog, key).reason(code, *values).text


def test_every_reason_code_has_a_message_and_parameters() -> None:
    assert set(MESSAGES) == set(PARAMETERS) == set(ReasonCode)
    assert supported_locales() == CATALOG_LANGUAGES
    for code, message in MESSAGES.items():
        assert message.context == code.value
        assert not message.plural or message.count in PARAMETERS[code]


def test_the_catalogs_hold_exactly_the_messages_of_the_source_all_translated() -> None:
    """`make messages` was run after the last change to MESSAGES, and every translation is done:
    the same (context, msgid) set as the source, none fuzzy or empty, each keeping the msgid's fields."""
    source = {
        (context, msgid if isinstance(msgid, str) else msgid[0])
        for _, msgid, _, context in extract_from_file(
            "python", str(Path(LOCALES_DIR).parent / "reasons.py"), keywords=dict(EXTRACTION_KEYWORDS)
        )
    }
    assert len(source) == len(MESSAGES)
    for key in TRANSLATED:
        with (LOCALES_DIR / key / "LC_MESSAGES" / "reasons.po").open("rb") as po:
            catalog = read_po(po, locale=key)
        entries = [m for m in catalog if m.id]
        assert {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in entries} == source, key
        for m in entries:
            assert not m.fuzzy, (key, m.context)
            ids = [m.id] if isinstance(m.id, str) else list(m.id)
            strings = [m.string] if isinstance(m.string, str) else list(m.string or ())
            assert len(strings) == (catalog.num_plurals if len(ids) > 1 else 1), (key, m.context)
            for s in strings:
                assert s and fields(s) == fields(ids[0]), (key, m.context, s)


@pytest.mark.parametrize("key", sorted(CATALOG_LANGUAGES))
def test_every_reason_renders_with_its_parameters_in_every_locale(catalog: Catalog, key: str) -> None:
    for code in ReasonCode:
        counts = COUNTS if MESSAGES[code].plural else ("1",)
        for count in counts:
            text = rendered(catalog, key, code, count)
            assert text and "{" not in text and "}" not in text, (key, code, text)
            if key != "en":
                english = rendered(catalog, "en", code, count)
                assert text != english, f"{key} {code}: English text where a translation exists"
                # the source's words do not leak into a translation (names and numbers may)
                assert not re.search(r"\b(you|your|the|needed|again)\b", text), (key, code, text)
            if MESSAGES[code].plural:
                assert count in text, (key, code, count, text)


def test_numbers_lists_and_names_follow_the_locale(catalog: Catalog) -> None:
    gap = [rendered(catalog, key, ReasonCode.SKILL_GAP, "1") for key in ("en", "fr", "zh")]
    assert "45%" in gap[0] and "Welding" in gap[0]
    assert "45\xa0%" in gap[1], "French puts a no-break space before the percent sign"
    assert "焊接" in gap[2] and "掌握度" in gap[2], "the catalog's own Chinese name"
    assert rendered(catalog, "fr", ReasonCode.LANGUAGE_MATCH, "1") == "Enseigné en arabe."
    assert "anglais et chinois" in rendered(catalog, "fr", ReasonCode.LANGUAGE_BLOCKED, "1")
    ru = [rendered(catalog, "ru", ReasonCode.REVIEW_DUE, n) for n in ("1", "3", "5")]
    assert "1 день" in ru[0] and "3 дня" in ru[1] and "5 дней" in ru[2], "Russian plural forms"
    ar = [rendered(catalog, "ar", ReasonCode.REMEDIATE, n) for n in ("2", "3")]
    assert "محاولتين" in ar[0] and "محاولات" in ar[1], "Arabic dual and plural"


def test_similar_learners_quotes_the_steps_expected_success_beside_the_models_figure(catalog: Catalog) -> None:
    text = rendered(catalog, "en", ReasonCode.SIMILAR_LEARNERS_SUCCEEDED, "1")
    assert "81% pass" in text and "your expected success is 59%" in text


@pytest.mark.parametrize(
    ("requested", "languages", "expected"),
    [
        ("fr", ("ar",), "fr"),
        ("zh-CN", (), "zh"),
        ("", ("ar", "fr"), "ar"),
        ("", ("lo", "th", "en"), "th"),  # the first of the learner's languages that has texts
        ("xx", ("ru", "en"), "ru"),
        ("", ("lo",), "en"),
        ("", (), "en"),
    ],
)
def test_locale_is_the_requests_else_the_learners_first_language_else_en(
    requested: str, languages: tuple[str, ...], expected: str
) -> None:
    assert resolve_locale(requested, languages) == expected
