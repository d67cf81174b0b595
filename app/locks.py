"""PostgreSQL advisory locks: one replica at a time migrates, or runs a scheduled pass.

Each lock lives on a connection of its own, outside the ORM's pool: the pool's connections
go back without a session reset (`db._keep_session`), so a session lock taken on one could
outlive its holder. Closing the connection releases the lock, and so does PostgreSQL when
the process dies, so a killed replica never keeps the others waiting. On SQLite (one
process by design) every lock is granted at once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog
from tortoise.backends.base.config_generator import expand_db_url

from app.config import Settings

log = structlog.get_logger(__name__)

# The locks the service takes; a name's key is stable across releases and replicas.
MIGRATE = "migrate"
INVOICE_SCHEDULER = "invoice-scheduler"
CREDITS_SWEEPER = "credits-sweeper"
NOTIFIER = "notifier"


def lock_key(name: str) -> int:
    """The 64-bit key of a named lock (PostgreSQL's advisory locks take a bigint)."""
    digest = hashlib.sha256(f"creditline:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _connect(settings: Settings) -> Any:
    credentials = expand_db_url(settings.database_url)["credentials"]
    return await asyncpg.connect(
        host=credentials.get("host"),
        port=credentials.get("port"),
        user=credentials.get("user"),
        password=credentials.get("password"),
        database=credentials.get("database"),
        ssl=credentials.get("ssl"),
        server_settings={"application_name": "creditline-lock"},
    )


@asynccontextmanager
async def advisory_lock(settings: Settings, name: str, *, wait: bool) -> AsyncIterator[bool]:
    """Holds the lock `name` while the block runs and yields True; with `wait=False`, yields
    False at once when another session holds it (the block then must do nothing)."""
    if settings.is_sqlite:
        yield True
        return
    connection = await _connect(settings)
    try:
        key = lock_key(name)
        if wait:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                log.info("lock.waiting", lock=name)
                await connection.execute("SELECT pg_advisory_lock($1)", key)
            held = True
        else:
            held = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", key))
        yield held
    finally:
        # Ending the session releases the lock; a connection that cannot close cleanly
        # (the block was cancelled mid-query, say) is dropped, with the same effect.
        try:
            await connection.close(timeout=5)
        except Exception:  # noqa: BLE001 - any failure: drop it instead
            with contextlib.suppress(Exception):
                connection.terminate()
