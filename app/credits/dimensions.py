"""Usage dimensions: a flat map of a few short keys to short strings, kept with each
usage record (what analytics group by: model, project, key, ...)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.kit.errors import DomainError, ErrorCode
from app.kit.text import is_storable

MAX_DIMENSIONS = 10
MAX_KEY_LENGTH = 64
MAX_VALUE_LENGTH = 256
# Lower case, as documented; upper case too, as the documented example ("apiKey") uses it.
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

Dimensions = dict[str, str]


def _invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, "dimensions")


def parse(value: object) -> Dimensions | None:
    """A map given as any JSON value (GraphQL's `JSON`) as `Dimensions`: null and `{}`
    are none. Only the shape is checked here; `problem` checks the content."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("dimensions is an object of string values.")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise _invalid("dimensions is a flat object: every value is a string.")
    return dict(value) or None


def problem(dimensions: Mapping[str, str]) -> DomainError | None:
    """What is wrong with a map of dimensions, or None."""
    if len(dimensions) > MAX_DIMENSIONS:
        return _invalid(f"At most {MAX_DIMENSIONS} dimensions.")
    for key, value in dimensions.items():
        if _KEY.fullmatch(key) is None:
            return _invalid(
                f"A dimension's key takes 1 to {MAX_KEY_LENGTH} characters of A-Z a-z 0-9 _ . -"
            )
        if len(value) > MAX_VALUE_LENGTH or not is_storable(value):
            return _invalid(
                f"A dimension's value takes at most {MAX_VALUE_LENGTH} characters, "
                "without NUL or lone surrogates."
            )
    return None


def is_key(key: str) -> bool:
    """Whether `key` is a well-formed dimension key (what a series may group by)."""
    return _KEY.fullmatch(key) is not None
