"""`credits.store`: the raw-SQL usage path reads the same values Tortoise would."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from app.credits import store
from app.credits.models import CreditAccount, CreditGrant
from app.kit.ids import uuid_order
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
