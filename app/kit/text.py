"""Text a database can store: no NUL byte, no lone surrogate.

PostgreSQL refuses NUL in text and JSON, and a lone surrogate (which JSON's `\\ud800`
escape can produce) has no UTF-8 form, so no driver can send it. Either would fail the
whole transaction it reached, so they are refused at the edge, one field at a time.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """True when `text` holds no NUL and no surrogate code point."""
    return _UNSTORABLE.search(text) is None
