"""The dashboard's interface language: en (the msgids), zh and fr. The texts are gettext messages
in Babel catalogs, locales/<locale>/LC_MESSAGES/dashboard.po (`make messages` extracts them from
the templates and this package and merges them), compiled in memory at first use as reason texts
are (planner/reasons.py). Learner content (reasons, names) keeps the learner's own language."""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DOMAIN = "dashboard"
LOCALES_DIR = Path(__file__).resolve().parent / "locales"
SOURCE_LOCALE = "en"
INTERFACE_LOCALES = ("en", "zh", "fr")
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})


@functools.cache
def translations(locale: str) -> gettext.NullTranslations:
    """The locale's compiled catalog (fuzzy entries fall back to English)."""
    if locale == SOURCE_LOCALE or locale not in INTERFACE_LOCALES:
        return gettext.NullTranslations()
    with (LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN)
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return Translations(fp=mo, domain=DOMAIN)


def negotiate(requested: str, accept_language: str) -> str:
    """The interface locale: the one asked for (?lang=), else the browser's first supported
    preference (Accept-Language), else English."""
    if requested in INTERFACE_LOCALES:
        return requested
    preferred = []
    for part in accept_language.split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if tag:
            preferred.append((weight, tag.replace("-", "_")))
    preferred.sort(key=lambda x: -x[0])
    found = Locale.negotiate([t for _, t in preferred], list(INTERFACE_LOCALES), sep="_")
    return str(found) if found else SOURCE_LOCALE


def direction(language: str) -> str:
    """ "rtl" for content in a right-to-left language (Arabic among the catalog's), else "ltr"."""
    return "rtl" if language.replace("_", "-").split("-", 1)[0].lower() in RTL_LANGUAGES else "ltr"


def locale_name(locale: str) -> str:
    """The locale's name in itself (the language menu)."""
    try:
        return str(Locale.parse(locale).get_display_name(locale))
    except (ValueError, UnknownLocaleError):
        return locale


def language_name(tag: str, locale: str) -> str:
    """A language's name in the interface locale (CLDR), with its tag: "Arabic (ar)"."""
    try:
        name = Locale.parse(tag.replace("-", "_")).get_language_name(locale)
    except (ValueError, UnknownLocaleError):
        return tag
    return f"{name} ({tag})" if name else tag
