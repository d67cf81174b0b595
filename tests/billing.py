"""Kept only for tests/test_fastpath.py, which another change deletes: delete this with it.

The operations live in tests/support/billing.py.
"""

from tests.support.billing import CREDITS, USAGE, grant

__all__ = ["CREDITS", "USAGE", "grant"]
