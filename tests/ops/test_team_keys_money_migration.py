"""credits/0010_team_keys and payments/0003_team_keys over a database that already holds
a team's money: grants, ledger, usage, a captured hold, a promo redemption, a Stripe
customer, a payment method and a paid purchase. Both dialects on either suite run
(PostgreSQL in a database of its own, like the catalog tests)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from tests.support import ROOT
from tests.support.db import fresh_postgres

# Everything up to the migrations under test (and what they depend on), nothing after.
_BEFORE = """
import asyncio, sys
from tortoise import Tortoise
from tortoise.migrations.api import migrate
from app import db
from app.config import Settings

async def main() -> None:
    config = db.tortoise_config(Settings(database_url=sys.argv[1]))
    await migrate(config=config, target="credits.0009_alert_rearm")
    await migrate(config=config, target="payments.0002_dispute_shortfall")
    await Tortoise.close_connections()

asyncio.run(main())
"""

_AT = "'2026-01-01T00:00:00+00:00'"


def _seed(team: uuid.UUID, grant: uuid.UUID, usage: uuid.UUID, stranger: uuid.UUID) -> list[str]:
    """One team's money in the old schema; `stranger` is a second team with nothing."""
    method, purchase, hold, code = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    return [
        f"INSERT INTO teams (id, name, created_at) VALUES ('{team}', 'old', {_AT})",
        f"INSERT INTO teams (id, name, created_at) VALUES ('{stranger}', 'other', {_AT})",
        "INSERT INTO credit_accounts (team_id, free, promotional, prepaid, invoiced_limit, "
        f"invoicing_suspended, updated_at) VALUES ('{team}', 0, 0, 70, 0, false, {_AT})",
        "INSERT INTO credit_grants (id, team_id, kind, amount, remaining, granted_at) "
        f"VALUES ('{grant}', '{team}', 'PREPAID', 100, 70, {_AT})",
        "INSERT INTO usage_records (id, team_id, idempotency_key, amount, from_free, "
        "from_promotional, from_prepaid, invoiced, occurred_at, occurred_at_given, period, "
        f"created_at) VALUES ('{usage}', '{team}', 'hold:{hold}', 30, 0, 0, 30, 0, {_AT}, "
        f"true, '2026-01', {_AT})",
        "INSERT INTO ledger_entries (team_id, grant_id, kind, amount, usage_id, created_at) "
        f"VALUES ('{team}', '{grant}', 'GRANT', 100, NULL, {_AT}), "
        f"('{team}', '{grant}', 'USAGE', -30, '{usage}', {_AT})",
        "INSERT INTO holds (id, team_id, idempotency_key, amount, captured, status, usage_id, "
        f"expires_at, created_at, updated_at) VALUES ('{hold}', '{team}', 'h1', 40, 30, "
        f"'CAPTURED', '{usage}', {_AT}, {_AT}, {_AT})",
        "INSERT INTO promo_codes (id, code, amount, redemptions, created_at) "
        f"VALUES ('{code}', 'OLD', 100, 1, {_AT})",
        "INSERT INTO promo_redemptions (promo_code_id, team_id, grant_id, created_at) "
        f"VALUES ('{code}', '{team}', '{grant}', {_AT})",
        "INSERT INTO stripe_customers (team_id, stripe_id, created_at) "
        f"VALUES ('{team}', 'cus_old', {_AT})",
        "INSERT INTO payment_methods (id, team_id, stripe_id, type, last4, is_default, "
        f"created_at) VALUES ('{method}', '{team}', 'pm_old', 'CARD', '4242', true, {_AT})",
        "INSERT INTO purchases (id, team_id, amount, method, status, payment_method_id, "
        "payment_intent_id, off_session, request_hash, grant_id, refunded_amount, "
        "disputed_amount, withdrawn_amount, shortfall_amount, shortfall_paid, "
        "covered_shortfall, restored_amount, created_at, updated_at) VALUES "
        f"('{purchase}', '{team}', 100, 'CARD', 'SUCCEEDED', '{method}', 'pi_old', false, "
        f"'h', '{grant}', 0, 0, 0, 0, 0, 0, 0, {_AT}, {_AT})",
    ]


_TABLES = (
    "credit_grants",
    "usage_records",
    "ledger_entries",
    "holds",
    "promo_redemptions",
    "stripe_customers",
    "payment_methods",
    "purchases",
)


def _run(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "AUTH_JWT_SECRET": "x" * 40}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


async def _before(url: str) -> None:
    done = await asyncio.to_thread(_run, ["-c", _BEFORE, url], url)
    assert done.returncode == 0, done.stderr[-3000:]


async def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_run, ["-m", "app", "migrate"], url)


def _sqlite(url: str, statements: list[str]) -> list[list[Any]]:
    """Runs `statements` with foreign keys enforced; the rows of each."""
    with sqlite3.connect(url.removeprefix("sqlite://")) as db:
        db.execute("PRAGMA foreign_keys = ON")
        return [
            db.execute(s.replace("false", "0").replace("true", "1")).fetchall() for s in statements
        ]


async def _postgres(url: str, statements: list[str]) -> list[list[Any]]:
    connection = await asyncpg.connect(url)
    try:
        return [[tuple(row) for row in await connection.fetch(s)] for s in statements]
    finally:
        await connection.close()


_COUNTS = [f'SELECT count(*) FROM "{t}"' for t in _TABLES]
_OBJECTS = 'SELECT "stripe_id", "kind", "team_id" FROM "stripe_objects" ORDER BY 1'
_KEYS = """
SELECT c.conrelid::regclass::text, c.contype::text,
       array_to_string(array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, p)
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.p), ','),
       coalesce(c.confrelid::regclass::text, '')
FROM pg_constraint c WHERE c.contype IN ('p', 'f')
  AND c.conrelid::regclass::text = ANY(ARRAY['credit_grants', 'usage_records',
      'ledger_entries', 'holds', 'promo_redemptions', 'payment_methods', 'purchases'])
"""


async def _check_upgrade(url: str, postgres: bool) -> None:
    team, grant, usage, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _before(url)
    if postgres:
        await _postgres(url, _seed(team, grant, usage, stranger))
    else:
        _sqlite(url, _seed(team, grant, usage, stranger))
    done = await _migrate(url)
    assert done.returncode == 0, done.stderr[-3000:]

    read = _postgres if postgres else _run_sqlite
    results = await read(url, [*_COUNTS, _OBJECTS])
    counts, objects = [rows[0][0] for rows in results[:-1]], results[-1]
    assert counts == [1, 1, 2, 1, 1, 1, 1, 1]  # every row kept
    assert [(s, k, str(t)) for s, k, t in objects] == [
        ("cus_old", "CUSTOMER", str(team)),
        ("pi_old", "PAYMENT_INTENT", str(team)),
        ("pm_old", "PAYMENT_METHOD", str(team)),
    ]
    if postgres:
        (keys,) = await _postgres(url, [_KEYS])
        primary = {table: columns for table, kind, columns, _ in keys if kind == "p"}
        assert set(primary.values()) == {"team_id,id"}, primary
        links = {(table, columns, target) for table, kind, columns, target in keys if kind == "f"}
        assert ("ledger_entries", "team_id,grant_id", "credit_grants") in links
        assert ("holds", "team_id,usage_id", "usage_records") in links
        assert ("promo_redemptions", "team_id,grant_id", "credit_grants") in links
        assert ("purchases", "team_id,grant_id", "credit_grants") in links
        assert ("purchases", "team_id,payment_method_id", "payment_methods") in links
        assert not any(columns in ("grant_id", "usage_id", "payment_method_id")
                       for _, columns, _ in links)  # fmt: skip
    # Deleting the team still takes all its rows with it (through every new key).
    results = await read(url, [f"DELETE FROM teams WHERE id = '{team}'", *_COUNTS])
    assert [rows[0][0] for rows in results[1:]] == [0] * len(_TABLES)


async def _run_sqlite(url: str, statements: list[str]) -> list[list[Any]]:
    return _sqlite(url, statements)


async def test_the_team_keys_apply_over_a_teams_money_on_sqlite(tmp_path: Path) -> None:
    await _check_upgrade(f"sqlite://{tmp_path / 'money.sqlite3'}", postgres=False)


async def test_the_team_keys_apply_over_a_teams_money_on_postgres() -> None:
    async with fresh_postgres("moneykeys") as url:
        await _check_upgrade(url, postgres=True)


async def test_rows_linked_across_teams_stop_the_migration_with_their_count() -> None:
    """A ledger entry of one team drawing on another team's grant could not keep its
    link under the composite key: the migration names it and changes nothing."""
    async with fresh_postgres("moneykeys") as url:
        team, grant, usage, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await _before(url)
        await _postgres(url, _seed(team, grant, usage, stranger))
        await _postgres(
            url,
            [
                "INSERT INTO ledger_entries (team_id, grant_id, kind, amount, created_at) "
                f"VALUES ('{stranger}', '{grant}', 'USAGE', -1, {_AT})"
            ],
        )
        done = await _migrate(url)
        assert done.returncode != 0
        assert "1 ledger_entries.grant_id of another team" in done.stderr
        (pending,) = await _postgres(
            url,
            [
                "SELECT count(*) FROM tortoise_migrations "
                "WHERE app = 'credits' AND name = '0010_team_keys'"
            ],
        )
        assert pending == [(0,)]
