"""Migrations upgrade a database that already holds data, not just an empty one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

from app import db
from app.config import Settings
from tests.support import ROOT
from tests.support.db import fresh_postgres
from tests.support.db import tables as tables_of_models

# Applies each app's first migration only, so the later ones run over existing rows.
_FIRST_ONLY = """
import asyncio, sys
from tortoise import Tortoise
from tortoise.migrations.api import migrate
from app import db
from app.config import Settings

async def main() -> None:
    config = db.tortoise_config(Settings(database_url=sys.argv[1]))
    for label in db.APPS:
        await migrate(config=config, target=f"{label}.0001_initial")
    await Tortoise.close_connections()

asyncio.run(main())
"""

_SEED = [
    "INSERT INTO teams (id, name, created_at) VALUES ('{team}', 'old team', '2026-01-01T00:00:00+00:00')",
    "INSERT INTO credit_accounts (team_id, free, promotional, prepaid, invoiced_limit, "
    "invoicing_suspended, updated_at) VALUES ('{team}', 0, 0, 100, 0, false, '2026-01-01T00:00:00+00:00')",
    # A line gets its team from its invoice (invoices 0003).
    "INSERT INTO invoices (id, team_id, number, source_key, kind, status, currency, subtotal_cents, "
    "tax_cents, total_cents, issued_at, charge_attempts) VALUES ('{invoice}', '{team}', "
    "'CL-2026-000001', 'purchase:old', 'CREDIT_PURCHASE', 'PAID', 'usd', 100, 0, 100, "
    "'2026-01-01T00:00:00+00:00', 0)",
    "INSERT INTO invoice_lines (invoice_id, position, description, quantity, unit_amount_cents, "
    "amount_cents) VALUES ('{invoice}', 0, 'Prepaid credits', 1, 100, 100)",
]

_LINE_TEAMS = "SELECT team_id FROM invoice_lines"


def _run(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "AUTH_JWT_SECRET": "x" * 40}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _sqlite(url: str, statements: list[str]) -> None:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite://")) as db:
        for statement in statements:
            db.execute(statement.replace("false", "0"))


def _psql(url: str, sql: str) -> None:
    url = url.replace("postgres://", "postgresql://")
    done = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _line_teams(url: str, sqlite: bool) -> list[str]:
    if sqlite:
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            return [str(row[0]) for row in db.execute(_LINE_TEAMS)]
    done = subprocess.run(
        ["psql", url.replace("postgres://", "postgresql://"), "-Atc", _LINE_TEAMS],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_latest_migrations_apply_over_rows_of_the_first(settings: Settings, tmp_path: Path) -> None:
    database = settings
    team = uuid.uuid4()
    seed = [s.format(team=team, invoice=uuid.uuid4()) for s in _SEED]
    if database.is_sqlite:
        url = f"sqlite://{tmp_path / 'upgrade.sqlite3'}"
    else:
        name = f"upgrade_{uuid.uuid4().hex[:12]}"
        server = database.database_url.rsplit("/", 1)[0]
        _psql(f"{server}/postgres", f'CREATE DATABASE "{name}"')
        url = f"{server}/{name}"
    try:
        first = _run(["-c", _FIRST_ONLY, url], url)
        assert first.returncode == 0, first.stderr[-3000:]
        if database.is_sqlite:
            _sqlite(url, seed)
        else:
            check = subprocess.run(
                [
                    "psql",
                    url.replace("postgres://", "postgresql://"),
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    ";".join(seed),
                ],
                capture_output=True,
                text=True,
            )
            assert check.returncode == 0, check.stderr
        latest = _run(["-m", "app", "migrate"], url)
        assert latest.returncode == 0, latest.stderr[-3000:]
        assert _line_teams(url, database.is_sqlite) == [str(team)]
    finally:
        if not database.is_sqlite:
            _psql(f"{server}/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_three_replicas_migrating_at_once_apply_each_migration_once() -> None:
    """On PostgreSQL (on either suite run): the advisory lock lets one apply everything;
    the others wait, find nothing pending and exit 0."""
    async with fresh_postgres("replicas") as url:
        runs = await asyncio.gather(*(asyncio.to_thread(_run, ["-m", "app", "migrate"], url)
                                      for _ in range(3)))  # fmt: skip
        for run in runs:
            assert run.returncode == 0, run.stderr[-3000:]
        # The last line (the others are log lines: `lock.waiting` when a replica waited).
        outputs = sorted(run.stdout.strip().splitlines()[-1] for run in runs)
        on_disk = db.disk_migrations()
        assert outputs == [
            f"applied {len(on_disk)} migration(s)",
            "no migration pending",
            "no migration pending",
        ]
        connection = await asyncpg.connect(url)
        try:
            recorded = await connection.fetch(f"SELECT app, name FROM {db.MIGRATIONS_TABLE}")
            tables = await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        finally:
            await connection.close()
        assert sorted(f"{row['app']}.{row['name']}" for row in recorded) == sorted(on_disk)
        assert {row["table_name"] for row in tables} == {*tables_of_models(), db.MIGRATIONS_TABLE}
