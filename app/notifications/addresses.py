"""Email addresses a message may be sent to: one address, nothing a header could carry."""

from __future__ import annotations

import re

from app.kit import text
from app.kit.errors import DomainError, ErrorCode

MAX_EMAILS = 20
# A plain addr-spec: no display name, no comments, no quoting, no whitespace or control
# characters (so no CR/LF header injection), one @, a dotted domain.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def clean(address: str, field: str = "emails") -> str:
    """The address lowercased; INVALID_INPUT naming `field` when it is not one address."""
    text.check(address, field)
    cleaned = address.strip().lower()
    if len(cleaned) > 254 or not _ADDRESS.match(cleaned):
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"Not an email address: {cleaned[:80]!r}.", field
        )
    return cleaned


def clean_all(addresses: list[str], field: str = "emails") -> list[str]:
    """Distinct, in order; at most MAX_EMAILS. An error names the item ("emails.2")."""
    if len(addresses) > MAX_EMAILS:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"At most {MAX_EMAILS} notification emails.", field
        )
    return list(dict.fromkeys(clean(a, f"{field}.{i}") for i, a in enumerate(addresses)))


def is_sendable(address: str) -> bool:
    """Whether a stored address (an admin's, an invitee's) is safe to put in a header."""
    return text.is_storable(address) and _ADDRESS.match(address) is not None
