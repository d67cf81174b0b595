"""`credits.store`: the raw-SQL usage path reads the same models Tortoise would."""

from __future__ import annotations

from app.credits import store
from app.credits.models import CreditAccount, CreditGrant
from tests.billing import grant
from tests.conftest import Actor, Api


async def test_rows_load_as_tortoise_loads_them(api: Api, admin: Actor, operator: Actor) -> None:
    """Every field, converted for this dialect, to the same value and type."""
    await grant(api, operator, admin.team_id, "1.50", "FREE", expires_at="2099-01-01T00:00:00Z")
    await grant(api, operator, admin.team_id, "2.00", "PREPAID", description="wire")
    conn = CreditAccount._meta.db
    for model, table in ((CreditAccount, "credit_accounts"), (CreditGrant, "credit_grants")):
        sql = f'SELECT {store._columns(model)} FROM "{table}"'
        _, rows = await conn.execute_query(sql)
        assert rows
        ours = store._models(conn, model, rows)
        theirs = [model._init_from_db(**dict(row)) for row in rows]
        for loaded, expected in zip(ours, theirs, strict=True):
            assert loaded.__dict__ == expected.__dict__
            for name, value in expected.__dict__.items():
                assert type(loaded.__dict__[name]) is type(value), name
