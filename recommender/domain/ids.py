"""Identifier rules shared by every entity, so ids are safe in logs, files and URLs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from recommender.errors import FieldViolation, InvalidInput

MAX_ID_LENGTH = 128
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\-]*")
_IDS = re.compile(rf"(?:[A-Za-z0-9][A-Za-z0-9._:@\-]{{0,{MAX_ID_LENGTH - 1}}}\n)*")  # all_ids: ids, each ended by \n
_LANGUAGE = re.compile(r"[a-zA-Z]{2,3}(?:-[a-zA-Z0-9]{2,8})*")
_COUNTRY = re.compile(r"[A-Z]{2}")
_LOCALE = re.compile(r"[a-zA-Z]{2,3}(?:[-_][a-zA-Z0-9]{2,8})*")


def id_violation(field: str, value: str, *, required: bool = True) -> FieldViolation | None:
    """The problem with an id, or None when it is acceptable (empty is fine if not required)."""
    if not value:
        return FieldViolation(field, "is required") if required else None
    if len(value) > MAX_ID_LENGTH:
        return FieldViolation(field, f"is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    if not _ID.fullmatch(value):
        return FieldViolation(field, "may only contain letters, digits and . _ : @ - (starting with a letter or digit)")
    return None


def is_id(value: str) -> bool:
    """Whether `value` is a well-formed id (id_violation with required=True finds nothing): the
    check without building a violation, for validating many ids at once."""
    return 0 < len(value) <= MAX_ID_LENGTH and _ID.fullmatch(value) is not None


def all_ids(values: Sequence[str]) -> bool:
    """Whether every value is a well-formed id (is_id of each), matched at once: one regular
    expression over the values joined by newlines, which no id holds (a value holding one would
    add a part, so the count of parts is checked too)."""
    if not values:
        return True
    joined = "\n".join(values) + "\n"
    return joined.count("\n") == len(values) and _IDS.fullmatch(joined) is not None


def require_id(field: str, value: str) -> str:
    """`value` if it is a well-formed id, else InvalidInput naming `field`. Reads check ids as
    writes do: an id that could never have been stored is the caller's mistake (INVALID_ARGUMENT),
    not an unknown entity, and never reaches the store (a NUL byte there is a driver error)."""
    v = id_violation(field, value)
    if v:
        raise InvalidInput(v)
    return value


def is_language_tag(value: str) -> bool:
    """A BCP 47 tag in the common shape (language[-script][-region]...)."""
    return bool(_LANGUAGE.fullmatch(value))


def normalize_language(value: str) -> str:
    """Lower-case the primary subtag so "ZH" and "zh" match module languages."""
    head, _, rest = value.partition("-")
    return head.lower() + ("-" + rest if rest else "")


def is_country_code(value: str) -> bool:
    """ISO 3166-1 alpha-2 shape: two upper-case letters."""
    return bool(_COUNTRY.fullmatch(value))


def is_locale(value: str) -> bool:
    return bool(_LOCALE.fullmatch(value))
