"""Set-based writes that Tortoise's own helpers make slow.

`Model.bulk_update` renders one CASE branch per row per field with pypika, which
costs about a millisecond per row; an executemany of one prepared UPDATE is a single
pipelined round trip on asyncpg and a tight loop on SQLite.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model


async def update_rows(
    conn: BaseDBAsyncClient, objects: Sequence[Model], fields: Sequence[str]
) -> None:
    """UPDATE each object's `fields` by primary key, in one executemany."""
    if not objects:
        return
    meta = type(objects[0])._meta
    postgres = conn.capabilities.dialect == "postgres"
    columns = [meta.fields_db_projection[name] for name in fields]
    pk_column = meta.fields_db_projection[meta.pk_attr]

    def placeholder(index: int) -> str:
        return f"${index}" if postgres else "?"

    assignments = ", ".join(
        f'"{column}" = {placeholder(i + 1)}' for i, column in enumerate(columns)
    )
    sql = (
        f'UPDATE "{meta.db_table}" SET {assignments} '
        f'WHERE "{pk_column}" = {placeholder(len(columns) + 1)}'
    )
    field_objects = [meta.fields_map[name] for name in fields]
    pk_field = meta.fields_map[meta.pk_attr]
    values = [
        [
            field.to_db_value(getattr(obj, name), obj)
            for name, field in zip(fields, field_objects, strict=True)
        ]
        + [pk_field.to_db_value(obj.pk, obj)]
        for obj in objects
    ]
    await conn.execute_many(sql, values)


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
