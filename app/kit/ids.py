"""Public ids: UUIDs; anything that does not parse is simply not found."""

from __future__ import annotations

import uuid
from operator import attrgetter

from uuid_utils.compat import uuid7


def time_ordered_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): milliseconds since the epoch, then random bits. Rows keyed by
    it are appended at the end of their primary-key index instead of at a random page,
    which for the usage records is one page written per batch instead of one per event."""
    return uuid7()


# Sorts UUIDs in their own order, which is PostgreSQL's too, comparing them as ints in C:
# UUID.__lt__ is a Python call per comparison.
uuid_order = attrgetter("int")


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (callers answer NOT_FOUND)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
