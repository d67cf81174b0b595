"""Text the database can store: no NUL byte, no lone surrogate (docs/inputs.md, "Text").

PostgreSQL refuses NUL in `text` and `varchar` columns, and a lone surrogate (U+D800 to
U+DFFF, which JSON's `\\ud800` escape can carry) has no UTF-8 encoding at all: either one
reaching a query fails the whole transaction. Interfaces check what a client sends here,
before any of it is stored, so the request is refused with an error naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass

from app.kit.errors import DomainError, ErrorCode

# Everything PostgreSQL (UTF-8) and SQLite's encoder refuse in text.
_REFUSED = re.compile("[\x00\ud800-\udfff]")

MESSAGE = "Text may not contain NUL bytes or unpaired surrogates."


@dataclass(frozen=True, slots=True)
class BadText:
    """Where refused text was found: a dotted path ("taxId.value", "events.3.description")."""

    path: str
    message: str = MESSAGE


def is_storable(text: str) -> bool:
    """True when the text holds no character the database refuses."""
    return _REFUSED.search(text) is None


def check(text: str | None, field: str | None) -> None:
    """Raises INVALID_INPUT naming `field` when `text` cannot be stored."""
    if text is not None and not is_storable(text):
        raise DomainError(ErrorCode.INVALID_INPUT, MESSAGE, field)


def find(
    value: object, path: str = "", *, name: Callable[[str], str] | None = None
) -> BadText | None:
    """The first refused string in `value` (strings, mappings with their keys, lists,
    dataclasses such as GraphQL input objects), or None. `name` turns a dataclass field's
    Python name into the name the client sent (camelCase for GraphQL)."""
    for where, text in _strings(value, path, name):
        if not is_storable(text):
            return BadText(where)
    return None


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _strings(
    value: object, path: str, name: Callable[[str], str] | None
) -> Iterator[tuple[str, str]]:
    # Recursive: callers bound the nesting first (the GraphQL view refuses deep variables).
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            yield _join(path, key_text), key_text
            yield from _strings(item, _join(path, key_text), name)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, _join(path, str(index)), name)
    elif is_dataclass(value) and not isinstance(value, type):
        for field in fields(value):
            label = name(field.name) if name is not None else field.name
            yield from _strings(getattr(value, field.name), _join(path, label), name)
