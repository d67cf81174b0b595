"""Health endpoints: /livez (the process), /readyz (database, broker, migrations), /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from tortoise import connections

from app import db
from app.config import Settings
from app.events import bus
from tests.support import ROOT
from tests.support.db import fresh_database, postgres_server
from tests.support.subscriptions import WAIT, ServerProcess, free_port

ALL_OK = {"database": "ok", "broker": "ok", "migrations": "ok"}


async def test_livez_and_readyz_answer_ok_on_a_migrated_database(
    client: httpx.AsyncClient,
) -> None:
    live = await client.get("/livez")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": ALL_OK}


async def test_readyz_names_a_pending_migration(client: httpx.AsyncClient) -> None:
    conn = connections.get("default")
    table = db.MIGRATIONS_TABLE
    _, rows = await conn.execute_query(
        f"SELECT app, name, applied_at FROM {table} WHERE app = 'credits' ORDER BY name DESC"
    )
    latest = rows[0]
    placeholder = "?" if "sqlite" in type(conn).__module__ else "$1"
    await conn.execute_query(
        f"DELETE FROM {table} WHERE app = 'credits' AND name = {placeholder}", [latest["name"]]
    )
    try:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["failing"] == ["migrations"]
        assert body["checks"]["migrations"] == f"pending: credits.{latest['name']}"
        assert body["checks"]["database"] == "ok"
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
    finally:
        await conn.execute_query(
            f"INSERT INTO {table} (app, name, applied_at) VALUES "
            + ("(?, ?, ?)" if placeholder == "?" else "($1, $2, $3)"),
            [latest["app"], latest["name"], latest["applied_at"]],
        )
    assert (await client.get("/readyz")).status_code == 200


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A Redis server of this test's own (it stops it), on a free port, answering."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(tmp_path), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    with contextlib.suppress(redis.ConnectionError):
                        if await client.ping():
                            break
                    assert process.returncode is None, "redis-server exited"
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        yield url, process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_readyz_names_an_unreachable_broker(
    client: httpx.AsyncClient, own_redis: tuple[str, asyncio.subprocess.Process]
) -> None:
    url, redis_server = own_redis
    await bus.broker.start(url)
    try:
        assert (await client.get("/readyz")).json()["checks"]["broker"] == "ok"
        redis_server.kill()
        await redis_server.wait()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["broker"]
        assert (await client.get("/livez")).status_code == 200
    finally:
        await bus.broker.stop()


def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "AUTH_JWT_SECRET": "x" * 40}
    return subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_a_replica_is_ready_once_its_database_is_migrated(
    database: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started before `migrate` is live but not ready; migrating makes it ready.
    On PostgreSQL, dropping its database makes it unready again, naming the database."""
    monkeypatch.setenv("SCHEDULER", "off")
    async with fresh_database(database, tmp_path) as url:
        server = ServerProcess(url, "memory://")
        try:
            await server.wait_ready()
            async with httpx.AsyncClient(base_url=server.http_url, timeout=WAIT) as http:
                assert (await http.get("/livez")).status_code == 200
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["failing"] == ["migrations"]
                for name in sorted(db.disk_migrations()):
                    assert name in ready.json()["checks"]["migrations"]

                done = await asyncio.to_thread(_migrate, url)
                assert done.returncode == 0, done.stderr[-3000:]
                ready = await http.get("/readyz")
                assert ready.status_code == 200, ready.text

                if not database.is_sqlite:
                    await _drop(url)
                    ready = await http.get("/readyz")
                    assert ready.status_code == 503
                    assert "database" in ready.json()["failing"]
                    assert (await http.get("/livez")).status_code == 200
        finally:
            server.stop()


async def _drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(f"{postgres_server()}/postgres")
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
