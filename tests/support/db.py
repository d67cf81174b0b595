"""The test database seen from outside the app's models."""

from __future__ import annotations

from tortoise import Tortoise, connections

from app.config import Settings


def tables() -> list[str]:
    """Every model's table, across the registered apps."""
    names = []
    for app_models in Tortoise.apps.values():
        for model in app_models.values():
            names.append(model._meta.db_table)
    return names


async def empty(database: Settings) -> None:
    """Deletes every row of every table (SQLite or PostgreSQL)."""
    conn = connections.get("default")
    names = tables()
    if database.is_sqlite:
        await conn.execute_script(
            "PRAGMA foreign_keys=OFF;"
            + "".join(f'DELETE FROM "{t}";' for t in names)
            + "PRAGMA foreign_keys=ON;"
        )
    else:
        await conn.execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in names) + " RESTART IDENTITY CASCADE;"
        )
