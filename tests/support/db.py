"""The test database seen from outside the app's models."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
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
        truncate = "TRUNCATE " + ", ".join(f'"{t}"' for t in names) + " RESTART IDENTITY CASCADE;"
        # A background pass of a server still up (the notifier, a key's lastUsedAt flush)
        # may hold a row lock on one table while it waits for another this statement has
        # locked: PostgreSQL then aborts one of the two. Ours goes again once theirs is done.
        for attempt in range(5):
            try:
                await conn.execute_script(truncate)
                return
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1)


# The local server the suite's PostgreSQL runs come from (scripts/test); the tests that
# exercise PostgreSQL's locks use it on either run and fail, never skip, without it.
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"


def postgres_server() -> str:
    """`postgres://USER@HOST:PORT` of TEST_DATABASE_URL when it names PostgreSQL, else the
    local default."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url.rsplit("/", 1)[0]
    return POSTGRES_SERVER


@asynccontextmanager
async def fresh_postgres(prefix: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards; yields its URL."""
    server = postgres_server()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{server}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def fresh_database(suite: Settings, directory: Path) -> AsyncIterator[str]:
    """An empty database of the suite's kind (SQLite under `directory`, or PostgreSQL)."""
    if suite.is_sqlite:
        yield f"sqlite://{directory / 'fresh.sqlite3'}"
        return
    async with fresh_postgres("fresh") as url:
        yield url
