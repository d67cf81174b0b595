"""Cursor pagination helpers shared by every list: page size bounds and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from app.kit.errors import DomainError, ErrorCode

DEFAULT_PAGE = 20
# The most rows one page returns: a client cannot ask a list for a million rows at once.
MAX_PAGE = 100
MAX_CURSOR = 512


def page_size(first: int | None, *, default: int = DEFAULT_PAGE, field: str = "first") -> int:
    """`first` checked against 0..MAX_PAGE (INVALID_INPUT outside); `default` when None."""
    if first is None:
        return default
    if not 0 <= first <= MAX_PAGE:
        raise DomainError(ErrorCode.INVALID_INPUT, f"{field} takes 0 to {MAX_PAGE}.", field)
    return first


def encode_cursor(*parts: object) -> str:
    """An opaque cursor holding `parts` (each turned to text; none may contain '|')."""
    raw = "|".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int, *, field: str = "after") -> list[str]:
    """The `count` parts of a cursor made by `encode_cursor`; INVALID_INPUT otherwise."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
    except (ValueError, UnicodeError, binascii.Error):
        parts = []
    if len(parts) != count:
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a cursor of this list.", field)
    return parts


def encode_time_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """The cursor of a row in a newest-first list ordered by (created_at, id)."""
    return encode_cursor(created_at.isoformat(), row_id)


def decode_time_cursor(cursor: str, *, field: str = "after") -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) of `encode_time_cursor`; INVALID_INPUT otherwise."""
    created, raw_id = decode_cursor(cursor, 2, field=field)
    try:
        return datetime.fromisoformat(created), uuid.UUID(raw_id)
    except ValueError:
        raise DomainError(ErrorCode.INVALID_INPUT, "Not a cursor of this list.", field) from None
