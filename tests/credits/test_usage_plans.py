"""The usage transaction's queries use their indexes whatever the plan's estimates.

On PostgreSQL each statement is prepared on its own connection with a forced generic
plan (what a pooled connection settles on after five runs of a cached statement), and
the plan read with EXPLAIN EXECUTE. On SQLite the same statements go through EXPLAIN
QUERY PLAN.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from tortoise import connections

from app.config import Settings
from app.credits import service as credits_service
from app.credits import store
from app.credits.models import (
    CreditAccount,
    CreditGrant,
    CreditKind,
    InvoicedPeriod,
    LedgerEntry,
    LedgerKind,
    UsageRecord,
)
from app.kit import clock
from app.teams.models import Team

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
TEAMS = 1500
RECORDS = 400  # few enough that a scan of every record looks cheaper than ten probes
# Tables that grow with history or with teams, or bloat with every write: none may be
# read whole, whatever their statistics say.
TABLES = (
    "usage_records",
    "ledger_entries",
    "credit_grants",
    "invoiced_periods",
    "credit_accounts",
)


async def _seed() -> list[uuid.UUID]:
    """Teams with accounts, grants, ledger entries, this month's invoiced row, and usage
    records, in the proportions of a live service; then fresh statistics."""
    teams = [Team(id=uuid.uuid4(), name=f"seed {i}", created_at=NOW) for i in range(TEAMS)]
    await Team.bulk_create(teams, batch_size=500)
    await CreditAccount.bulk_create(
        [
            CreditAccount(team_id=t.id, prepaid=200, invoiced_limit=10**12, updated_at=NOW)
            for t in teams
        ],
        batch_size=500,
    )
    grants = [
        CreditGrant(
            id=uuid.uuid4(),
            team_id=t.id,
            kind=CreditKind.PREPAID,
            amount=100,
            remaining=100,
            granted_at=NOW,
        )
        for t in teams
        for _ in range(2)
    ]
    await CreditGrant.bulk_create(grants, batch_size=500)
    await LedgerEntry.bulk_create(
        [
            LedgerEntry(
                team_id=g.team_id, grant_id=g.id, kind=LedgerKind.GRANT, amount=100, created_at=NOW
            )
            for g in grants
        ],
        batch_size=500,
    )
    await InvoicedPeriod.bulk_create(
        [InvoicedPeriod(team_id=t.id, period="2026-03", amount=1) for t in teams], batch_size=500
    )
    await UsageRecord.bulk_create(
        [
            UsageRecord(
                id=uuid.uuid4(),
                team_id=teams[i % 8].id,
                idempotency_key=f"seed-{i}",
                amount=1,
                from_free=0,
                from_promotional=0,
                from_prepaid=1,
                invoiced=0,
                occurred_at=NOW,
                occurred_at_given=False,
                period="2026-03",
                created_at=NOW,
            )
            for i in range(RECORDS)
        ],
        batch_size=500,
    )
    conn = connections.get("default")
    await conn.execute_script("ANALYZE")
    return [t.id for t in teams]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Every statement the app sends through the default connection's client, in order."""
    statements: list[tuple[str, list[Any]]] = []
    client = type(connections.get("default"))
    for name in ("execute_query", "execute_query_dict"):
        original = getattr(client, name)

        def recording(self: Any, query: str, values: Any = None, *, _run: Any = original) -> Any:
            statements.append((query, list(values or [])))
            return _run(self, query, values)

        monkeypatch.setattr(client, name, recording)
    script = client.execute_script

    def recording_script(self: Any, query: str, *, _run: Any = script) -> Any:
        statements.append((query, []))
        return _run(self, query)

    monkeypatch.setattr(client, "execute_script", recording_script)
    return statements


async def _usage_transaction(teams: list[uuid.UUID]) -> None:
    """One transaction that takes every branch: a draw from credits, a replay of a
    stored key, an event into the invoiced tier, one dated in the previous month."""
    clock.freeze(NOW)
    requests = [
        credits_service.UsageRequest(team_id=teams[0], amount=50, idempotency_key="fits"),
        credits_service.UsageRequest(team_id=teams[0], amount=1, idempotency_key="seed-0"),
        credits_service.UsageRequest(team_id=teams[1], amount=500, idempotency_key="invoiced"),
        credits_service.UsageRequest(
            team_id=teams[2],
            amount=1,
            idempotency_key="late",
            occurred_at=NOW - timedelta(days=20),
        ),
    ]
    results = await credits_service.record_usage(requests)
    assert [r.record is not None for r in results] == [True, True, True, True]
    assert results[2].record is not None
    assert results[2].record.invoiced == 300


def _transaction_statements(recorded: list[tuple[str, list[Any]]]) -> list[str]:
    return [
        sql
        for sql, _ in recorded
        if re.match(r"\s*(SELECT|WITH|UPDATE|INSERT)\b", sql, re.IGNORECASE)
    ]


async def _generic_plans(settings: Settings, statements: list[str]) -> list[str]:
    """Each statement's generic plan, under the planner setting the transaction makes."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(store.INDEX_PROBES_ONLY.replace("SET LOCAL", "SET"))
        plans = []
        for number, sql in enumerate(statements):
            name = f"usage_{number}"
            await connection.execute(f"PREPARE {name} AS {sql}")
            count = await connection.fetchval(
                "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1",
                name,
            )
            # A generic plan does not depend on the values: NULL stands for each.
            rows = await connection.fetch(f"EXPLAIN EXECUTE {name}({', '.join(['NULL'] * count)})")
            plans.append("\n".join(row[0] for row in rows))
        return plans
    finally:
        await connection.close()


async def _sqlite_plans(recorded: list[tuple[str, list[Any]]]) -> list[str]:
    conn = connections.get("default")
    plans = []
    for sql, values in recorded:
        if re.match(r"\s*SELECT\b", sql, re.IGNORECASE):
            _, rows = await conn.execute_query(f"EXPLAIN QUERY PLAN {sql}", values)
            plans.append("\n".join(str(row["detail"]) for row in rows))
    return plans


async def _unique_key_index(settings: Settings) -> str:
    """The name of usage_records' unique (team_id, idempotency_key) index."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        name: str = await connection.fetchval(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'usage_records' "
            "AND indexdef LIKE 'CREATE UNIQUE INDEX % (team_id, idempotency_key)'"
        )
        return name
    finally:
        await connection.close()


@pytest.mark.parametrize("young", [False, True], ids=["with-history", "young-table"])
async def test_the_idempotency_probe_and_the_usage_path_use_their_indexes(
    database: Settings, recorded: list[tuple[str, list[Any]]], young: bool
) -> None:
    teams = await _seed()
    if young:
        # A fresh deployment's table: empty, its statistics saying so. Every index that
        # leads with team_id then looks as good as the unique one to the planner.
        conn = connections.get("default")
        await conn.execute_script("DELETE FROM usage_records")
        await conn.execute_script("ANALYZE usage_records")
    recorded.clear()
    await _usage_transaction(teams)
    if database.is_sqlite:
        plans = await _sqlite_plans(recorded)
        probe = [p for p in plans if "usage_records" in p]
        assert probe
        assert all("USING INDEX" in p for p in probe), probe
        for plan in plans:
            for table in TABLES:
                assert not re.search(rf"\bSCAN {table}\b(?! USING)", plan), plan
        return
    # The plans below are read under the transaction's planner setting: it must be made.
    assert [sql for sql, _ in recorded].count(store.INDEX_PROBES_ONLY) == 1
    statements = _transaction_statements(recorded)
    plans = await _generic_plans(database, statements)
    probes = [
        plan
        for sql, plan in zip(statements, plans, strict=True)
        if sql.lstrip().startswith("SELECT") and "idempotency_key" in sql
    ]
    assert len(probes) == 1, statements
    unique = await _unique_key_index(database)
    assert re.search(rf"Index (Only )?Scan using {unique} on usage_records", probes[0]), probes[0]
    for sql, plan in zip(statements, plans, strict=True):
        for table in TABLES:
            assert f"Seq Scan on {table}" not in plan, f"{sql}\n{plan}"
