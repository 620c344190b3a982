"""Every interface text of the dashboard is translated in zh and fr, keeping its placeholders."""

from __future__ import annotations

import re
import string

import pytest
from babel.messages.pofile import read_po

from recommender.dashboard.i18n import DOMAIN, INTERFACE_LOCALES, LOCALES_DIR, SOURCE_LOCALE, negotiate, translations

TEMPLATES = LOCALES_DIR.parent / "templates"
CALL = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\)""")


def _texts() -> set[str]:
    found: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        for double, single in CALL.findall(template.read_text(encoding="utf-8")):
            found.add(double or single)
    return found


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("locale", [x for x in INTERFACE_LOCALES if x != SOURCE_LOCALE])
def test_every_interface_text_is_translated(locale: str) -> None:
    texts = _texts()
    assert len(texts) > 50
    with (LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=locale)
    t = translations(locale)
    for text in sorted(texts):
        entry = catalog.get(text)
        assert entry is not None and entry.string and "fuzzy" not in entry.flags, (
            f"{locale}: {text!r} is not translated (make messages, then translate it)"
        )
        translated = entry.string
        assert isinstance(translated, str)  # no plural messages in the interface
        assert t.gettext(text) == translated
        assert _fields(translated) == _fields(text), f"{locale}: {text!r} -> {translated!r}"


def test_the_browser_s_preference_picks_the_interface_language() -> None:
    assert negotiate("", "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert negotiate("", "de-DE,fr;q=0.7") == "fr"
    assert negotiate("", "ar") == "en"
    assert negotiate("fr", "zh-CN") == "fr"
    assert negotiate("", "fr;q=bad") == "en"
