"""`credits.store`: the raw-SQL usage path reads the same values Tortoise would."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import timedelta

from app.credits import service as credits
from app.credits import store
from app.credits.models import (
    CreditAccount,
    CreditGrant,
    CreditKind,
    LedgerEntry,
    UsageDailyRollup,
    UsageRecord,
    UsageRollup,
)
from app.kit import clock
from app.kit.ids import uuid_order
from app.teams.models import Team
from tests.support.api import Actor, Api
from tests.support.billing import grant


async def test_rows_load_as_tortoise_loads_them(api: Api, admin: Actor, operator: Actor) -> None:
    """Every column, converted for this dialect, to the same value and type."""
    await grant(api, operator, admin.team_id, "1.50", "FREE", expires_at="2099-01-01T00:00:00Z")
    await grant(api, operator, admin.team_id, "2.00", "PREPAID", description="wire")
    conn = CreditAccount._meta.db
    tables = (
        (store.AccountRow, CreditAccount, "credit_accounts"),
        (store.GrantRow, CreditGrant, "credit_grants"),
    )
    for row_type, model, table in tables:
        sql = f'SELECT {store._columns(row_type)} FROM "{table}"'
        _, rows = await conn.execute_query(sql)
        assert rows
        ours = store._rows(conn, row_type, rows)
        theirs = [model._init_from_db(**dict(row)) for row in rows]
        columns = [n for n in model._meta.fields_map if n in model._meta.fields_db_projection]
        for loaded, expected in zip(ours, theirs, strict=True):
            values = asdict(loaded)
            assert sorted(values) == sorted(columns)  # every column, under its field name
            for name, value in values.items():
                assert value == getattr(expected, name), name
                assert type(value) is type(getattr(expected, name)), name


async def test_uuid_order_is_the_databases(api: Api) -> None:
    """Accounts are locked in `uuid_order`; the database orders the same ids alike."""
    ids = [uuid.uuid4() for _ in range(200)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    ids += [uuid.UUID(int=1 << shift) for shift in range(0, 128, 7)]  # every byte position
    ours = sorted(ids, key=uuid_order)
    assert ours == sorted(ids)
    conn = CreditAccount._meta.db
    if conn.capabilities.dialect == "postgres":
        sql = "SELECT v FROM unnest($1::uuid[]) AS v ORDER BY v"
        _, rows = await conn.execute_query(sql, [ids])
    else:  # stored as text
        values = ", ".join(f"('{i}')" for i in ids)
        _, rows = await conn.execute_query(f"SELECT column1 AS v FROM (VALUES {values}) ORDER BY 1")
    assert [uuid.UUID(str(row["v"])) for row in rows] == ours


class _Recorder:
    """Stands in for a connection: keeps each statement and its parameters."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[object]]] = []

    async def execute_query(self, sql: str, values: list[object]) -> tuple[int, list[object]]:
        self.calls.append((sql, values))
        return 0, []


async def test_multi_row_inserts_send_every_row_once_in_order() -> None:
    """The Citus form's INSERTs (`_insert_rows`): power-of-two statements, each with as
    many placeholders as values, the rows back in their order."""
    columns = ("team_id", "amount", "kind")
    for count, statements in ((0, 0), (1, 1), (30, 4), (64, 1), (65, 2), (127, 7), (200, 4)):
        rows = [(f"team {i}", i, "USAGE") for i in range(count)]
        conn = _Recorder()
        await store._insert_rows(conn, "ledger_entries", columns, rows, "ON CONFLICT DO NOTHING")  # type: ignore[arg-type]
        assert len(conn.calls) == statements, count
        sent: list[object] = []
        for sql, values in conn.calls:
            placeholders = sql.count("$")
            assert placeholders == len(values)
            assert placeholders % len(columns) == 0
            assert f"${placeholders}" in sql
            assert f"${placeholders + 1}" not in sql
            assert sql.endswith(") ON CONFLICT DO NOTHING")
            sent += values
        assert sent == [value for row in rows for value in row]


async def test_the_per_table_writes_store_what_the_one_statement_does(
    operator: Actor, api: Api
) -> None:
    """The same 100 events (descriptions, dimensions, one transaction) through both
    write forms, for two teams: equal records, ledger, rollups and balances (on
    PostgreSQL the two forms differ; SQLite has one)."""
    teams = []
    for name in ("one statement", "per table"):
        team = Team(id=uuid.uuid4(), name=name, created_at=clock.now())
        await team.save()
        await CreditAccount.create(team_id=team.id, updated_at=clock.now())
        await credits.grant_credits(team.id, CreditKind.FREE, 30 * 1_000_000)
        await credits.grant_credits(team.id, CreditKind.PREPAID, 4_000 * 1_000_000)
        teams.append(team.id)
    hour = clock.now().replace(minute=0, second=0, microsecond=0)

    def events(team_id: uuid.UUID) -> list[credits.UsageRequest]:
        return [
            credits.UsageRequest(
                team_id=team_id,
                amount=(n % 7 + 1) * 1_000_000,
                idempotency_key=f"e{n}",
                description=None if n % 3 else f"job {n % 2}",
                occurred_at=hour - timedelta(hours=n % 30),
                dimensions={"model": f"m{n % 4}", "region": "eu"} if n % 5 else None,
            )
            for n in range(100)
        ]

    try:
        for team_id, split in zip(teams, (False, True), strict=True):
            store.set_split_writes(split)
            results = await credits.record_usage(events(team_id))
            assert all(r.record is not None for r in results)
    finally:
        store.set_split_writes(None)

    async def stored(team_id: uuid.UUID) -> dict[str, object]:
        records = await UsageRecord.filter(team_id=team_id).order_by("idempotency_key").values(
            "idempotency_key", "amount", "from_free", "from_prepaid", "invoiced",
            "description", "dimensions", "occurred_at",
        )  # fmt: skip
        keys = {r.id: r.idempotency_key for r in await UsageRecord.filter(team_id=team_id)}
        entries = sorted(
            (keys.get(e.usage_id, "") if e.usage_id else "", e.kind, e.amount)
            for e in await LedgerEntry.filter(team_id=team_id)
        )
        hourly = (
            await UsageRollup.filter(team_id=team_id)
            .order_by("hour", "dimension", "value")
            .values("hour", "dimension", "value", "amount", "from_credits", "invoiced", "events")
        )
        daily = (
            await UsageDailyRollup.filter(team_id=team_id)
            .order_by("day", "dimension", "value")
            .values("day", "dimension", "value", "amount", "from_credits", "invoiced", "events")
        )
        account = await CreditAccount.get(team_id=team_id)
        return {
            "records": records,
            "entries": entries,
            "hourly": hourly,
            "daily": daily,
            "balances": (account.free, account.promotional, account.prepaid),
            "grants": sorted(g.remaining for g in await CreditGrant.filter(team_id=team_id)),
        }

    one, per_table = await stored(teams[0]), await stored(teams[1])
    assert len(one["records"]) == 100  # type: ignore[arg-type]
    assert len(one["hourly"]) > 30  # type: ignore[arg-type]
    assert one == per_table
