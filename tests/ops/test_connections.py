"""The service's PostgreSQL connections carry their session settings from the start
(app/db.py): Citus's shard hiding off, so that asyncpg's type introspection is not a
rewritten catalog query on a Citus coordinator (docs/scaling.md, "Connections on
Citus"), and the service's name in pg_stat_activity.

The connection test talks to a real PostgreSQL server on either suite run (like the
catalog tests): it fails, never skips, without one.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient

from app import db
from app.config import Settings
from tests.support.db import postgres_server


def _credentials(url: str) -> dict[str, Any]:
    connection = db.tortoise_config(Settings(database_url=url))["connections"]["default"]
    assert isinstance(connection, dict)
    credentials: dict[str, Any] = connection["credentials"]
    return credentials


def test_postgres_connections_name_the_service_and_turn_shard_hiding_off() -> None:
    credentials = _credentials("postgres://app@db.internal:5432/creditline")
    assert credentials["server_settings"] == {"citus.override_table_visibility": "off"}
    assert credentials["application_name"] == "creditline"


def test_an_application_name_in_the_url_is_kept() -> None:
    credentials = _credentials("postgres://app@db.internal/creditline?application_name=billing-eu")
    assert credentials["application_name"] == "billing-eu"
    assert credentials["server_settings"] == {"citus.override_table_visibility": "off"}


def test_sqlite_has_no_session_settings() -> None:
    connection = db.tortoise_config(Settings(database_url="sqlite://:memory:"))["connections"]
    assert connection["default"] == "sqlite://:memory:"


async def test_a_pooled_connection_starts_with_the_settings() -> None:
    """Plain PostgreSQL accepts the `citus.` setting as a placeholder and reports it."""
    credentials = _credentials(f"{postgres_server()}/postgres")
    client = AsyncpgDBClient(connection_name="settings-probe", **credentials)
    await client.create_connection(with_db=True)
    try:
        _, rows = await client.execute_query(
            "SELECT current_setting('citus.override_table_visibility') AS hiding, "
            "current_setting('application_name') AS name"
        )
    finally:
        await client.close()
    assert [dict(row) for row in rows] == [{"hiding": "off", "name": "creditline"}]
