"""Raw SQL on either dialect: written once with PostgreSQL's `$n` placeholders.

(The usage path's statements live in app/credits/store.py.)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient


def _for_dialect(
    conn: BaseDBAsyncClient, sql: str, values: Sequence[object]
) -> tuple[str, list[object]]:
    """SQL written with $1, $2 ... as is for PostgreSQL; for SQLite, `?` placeholders with
    the values reordered to match, and UUIDs as the text SQLite stores them as."""
    if conn.capabilities.dialect == "postgres":
        return sql, list(values)
    order = [int(n) - 1 for n in re.findall(r"\$(\d+)", sql)]
    texts = [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return re.sub(r"\$\d+", "?", sql), [texts[i] for i in order]


async def fetch_one(
    conn: BaseDBAsyncClient, sql: str, values: Sequence[object]
) -> dict[str, Any] | None:
    """One row as a dict, or None."""
    query, params = _for_dialect(conn, sql, values)
    rows = await conn.execute_query_dict(query, params)
    return rows[0] if rows else None


async def fetch_all(
    conn: BaseDBAsyncClient, sql: str, values: Sequence[object]
) -> list[dict[str, Any]]:
    """Every row as a dict."""
    query, params = _for_dialect(conn, sql, values)
    return list(await conn.execute_query_dict(query, params))


def is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"
