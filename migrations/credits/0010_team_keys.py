"""Credits tables keyed by team: every primary key and every link between team rows
includes `team_id`, so each can live on one team's shard (docs/distribution-keys-money.md).

PostgreSQL: the primary key of each team table becomes (team_id, id); the links into
credit rows become composite, (team_id, grant_id) -> credit_grants (team_id, id) and
the like, which also makes the database check that a row and the row it points at
belong to the same team. `purchases.grant_id` (payments) loses ON DELETE SET NULL: Citus
refuses SET NULL on a key that includes the distribution column, and a grant is only
ever deleted with its team, whose purchases go in the same statement.

SQLite is never distributed: its keys stay single-column; only the ledger's index by
grant gains the team (the Tortoise state, both dialects).

Applies to a database with data: rows whose team differs from the row they point at
would fail the new keys, so they are looked for first and named in the error.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# Team tables of the credits app whose primary key becomes (team_id, id).
_TABLES = (
    "credit_accounts",
    "credit_grants",
    "usage_records",
    "ledger_entries",
    "usage_rollups",
    "invoiced_periods",
    "promo_redemptions",
    "promo_failures",
    "billing_alerts",
    "auto_top_up_attempts",
    "holds",
)

# (table, column, target, on delete): links into credit rows, single-column before.
_LINKS = (
    ("ledger_entries", "grant_id", "credit_grants", "CASCADE"),
    ("promo_redemptions", "grant_id", "credit_grants", "CASCADE"),
    ("holds", "usage_id", "usage_records", "CASCADE"),
    ("purchases", "grant_id", "credit_grants", "SET NULL"),
)


def _composite_action(action: str) -> str:
    # SET NULL would need the column list (PostgreSQL 15) and Citus refuses it anyway.
    return "NO ACTION" if action == "SET NULL" else action


async def _rows(client, sql: str) -> list[dict]:
    _, rows = await client.execute_query(sql)
    return list(rows)


async def _constraint(client, table: str, kind: str, columns: tuple[str, ...]) -> str | None:
    """The name of the constraint of this kind ('p', 'f') on exactly these columns."""
    wanted = "ARRAY[" + ", ".join(f"'{c}'" for c in columns) + "]::name[]"
    rows = await _rows(
        client,
        "SELECT c.conname FROM pg_constraint c WHERE c.conrelid = to_regclass('\"" + table + "\"') "
        f"AND c.contype = '{kind}' AND array(SELECT a.attname FROM unnest(c.conkey) "
        "WITH ORDINALITY AS k(attnum, pos) JOIN pg_attribute a ON a.attrelid = c.conrelid "
        f"AND a.attnum = k.attnum ORDER BY k.pos) = {wanted}",
    )
    return rows[0]["conname"] if rows else None


async def _check_same_team(client) -> None:
    """Refuses (with the counts) a database where a link crosses teams."""
    wrong = []
    for table, column, target, _ in _LINKS:
        rows = await _rows(
            client,
            f'SELECT count(*) AS n FROM "{table}" AS s JOIN "{target}" AS t '
            f'ON t."id" = s."{column}" WHERE t."team_id" <> s."team_id"',
        )
        if rows[0]["n"]:
            wrong.append(f"{rows[0]['n']} {table}.{column} of another team")
    if wrong:
        raise RuntimeError(
            "rows link to another team's rows, the team keys cannot be added: " + "; ".join(wrong)
        )


async def _primary_key(client, table: str) -> str | None:
    rows = await _rows(
        client,
        "SELECT conname FROM pg_constraint WHERE contype = 'p' "
        f"AND conrelid = to_regclass('\"{table}\"')",
    )
    return rows[0]["conname"] if rows else None


async def _swap_primary_key(client, table: str, columns: tuple[str, ...]) -> None:
    name = await _primary_key(client, table)
    drop = f'DROP CONSTRAINT "{name}", ' if name else ""
    cols = ", ".join(f'"{c}"' for c in columns)
    await client.execute_script(
        f'ALTER TABLE "{table}" {drop}ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({cols})'
    )


class _RemoveIndexIfPresent(ops.RemoveIndex):
    """The ledger's index by grant alone: (team_id, grant_id) replaces it. SQLite lost it
    when 0003 rebuilt the table, so it is dropped only if present."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        await state_editor.client.execute_script(
            'DROP INDEX IF EXISTS "idx_ledger_entr_grant_i_8868ad"'
        )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        await state_editor.client.execute_script(
            'CREATE INDEX IF NOT EXISTS "idx_ledger_entr_grant_i_8868ad" '
            'ON "ledger_entries" ("grant_id")'
        )


async def _forward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await _check_same_team(client)
    # The links first: they depend on the unique index of the key being replaced.
    for table, column, target, _ in _LINKS:
        name = await _constraint(client, table, "f", (column,))
        if name:
            await client.execute_script(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for table in _TABLES:
        await _swap_primary_key(client, table, ("team_id", "id"))
    for table, column, target, action in _LINKS:
        await client.execute_script(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_team_{column}_fkey" '
            f'FOREIGN KEY ("team_id", "{column}") REFERENCES "{target}" ("team_id", "id") '
            f"ON DELETE {_composite_action(action)}"
        )
    # A hold captured or released by its id alone (the team not given, /v1/holds) is
    # found through this, as it was through the old primary key.
    await client.execute_script('CREATE INDEX IF NOT EXISTS "holds_id_idx" ON "holds" ("id")')


async def _backward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script('DROP INDEX IF EXISTS "holds_id_idx"')
    for table, column, _, _ in _LINKS:
        await client.execute_script(
            f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{table}_team_{column}_fkey"'
        )
    for table in _TABLES:
        await _swap_primary_key(client, table, ("id",))
    for table, column, target, action in _LINKS:
        await client.execute_script(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_{column}_fkey" '
            f'FOREIGN KEY ("{column}") REFERENCES "{target}" ("id") ON DELETE {action}'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0009_alert_rearm"),
        ("teams", "0004_team_keys"),
        # purchases.grant_id points at credit_grants: its link is rebuilt here.
        ("payments", "0002_dispute_shortfall"),
    ]

    initial = False

    operations = [
        _RemoveIndexIfPresent(
            model_name="LedgerEntry",
            name=None,
            fields=["grant_id"],
        ),
        ops.AddIndex(
            model_name="LedgerEntry",
            index=Index(fields=["team_id", "grant_id"]),
        ),
        ops.RunPython(_forward, _backward),
    ]
