"""Learners and the checks every learner passes before it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from recommender.domain.catalog import MAX_HSK_LEVEL, Catalog
from recommender.domain.ids import id_violation, is_country_code, is_language_tag, normalize_language
from recommender.errors import FieldViolation, InvalidInput

MAX_WEEKLY_MINUTES = 7 * 24 * 60
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_LENGTH = 256
MAX_LANGUAGES = 16


@dataclass(frozen=True)
class Learner:
    learner_id: str
    cohort_id: str = ""
    country: str = ""
    languages: tuple[str, ...] = ()
    program: str = ""
    target_role_id: str = ""
    chinese_level: int = 0
    weekly_minutes: int = 0
    attributes: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def validate_learner(
    learner: Learner, catalog: Catalog, prefix: str = "learner", *, require_languages: bool = True
) -> Learner:
    """The learner with normalized languages, or InvalidInput naming every bad field.

    A learner needs at least one language: no path can be planned without one, and refusing it
    here says so at the call that can fix it. A target role may wait (not chosen yet). Only a
    placeholder for a learner known from events alone (an import without a learner file) is stored
    without languages (`require_languages=False`)."""
    problems: list[FieldViolation] = []
    v = id_violation(f"{prefix}.learner_id", learner.learner_id)
    if v:
        problems.append(v)
    v = id_violation(f"{prefix}.cohort_id", learner.cohort_id, required=False)
    if v:
        problems.append(v)
    if learner.country and not is_country_code(learner.country):
        problems.append(FieldViolation(f"{prefix}.country", "must be an ISO 3166-1 alpha-2 code such as 'RW'"))
    if require_languages and not learner.languages:
        problems.append(
            FieldViolation(f"{prefix}.languages", "is required: at least one language the learner studies in")
        )
    if len(learner.languages) > MAX_LANGUAGES:
        problems.append(FieldViolation(f"{prefix}.languages", f"at most {MAX_LANGUAGES} languages"))
    for i, lang in enumerate(learner.languages):
        if not is_language_tag(lang):
            problems.append(FieldViolation(f"{prefix}.languages[{i}]", f"{lang[:40]!r} is not a BCP 47 tag"))
    if len(learner.program) > 128:
        problems.append(FieldViolation(f"{prefix}.program", "at most 128 characters"))
    if learner.target_role_id and learner.target_role_id not in catalog.roles:
        problems.append(
            FieldViolation(
                f"{prefix}.target_role_id",
                f"unknown role {learner.target_role_id[:128]!r}; GetCatalog lists the roles",
            )
        )
    if not 0 <= learner.chinese_level <= MAX_HSK_LEVEL:
        problems.append(FieldViolation(f"{prefix}.chinese_level", "must be an HSK level 0-6"))
    if not 0 <= learner.weekly_minutes <= MAX_WEEKLY_MINUTES:
        problems.append(FieldViolation(f"{prefix}.weekly_minutes", f"must be in [0, {MAX_WEEKLY_MINUTES}]"))
    if len(learner.attributes) > MAX_ATTRIBUTES:
        problems.append(FieldViolation(f"{prefix}.attributes", f"at most {MAX_ATTRIBUTES} entries"))
    for key, value in learner.attributes.items():
        if not key or len(key) > 64 or len(value) > MAX_ATTRIBUTE_LENGTH:
            problems.append(
                FieldViolation(
                    f"{prefix}.attributes",
                    f"keys must be 1-64 and values at most {MAX_ATTRIBUTE_LENGTH} characters",
                )
            )
            break
    if problems:
        raise InvalidInput(problems)
    languages = tuple(dict.fromkeys(normalize_language(x) for x in learner.languages))
    return learner if languages == learner.languages else replace(learner, languages=languages)
