"""Usage history: hourly rollups per team and group, and the indexes the history reads.

`usage_rollups` is filled from the usage records already stored (the usage statement
keeps it from now on); ledger entries are indexed by (team, id) instead of team alone,
usage records also by (team, occurred_at) (docs/usage-history.md).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


_SUMS = (
    'sum("amount"), sum("from_free" + "from_promotional" + "from_prepaid"), '
    'sum("invoiced"), count(*)'
)
_COLUMNS = (
    '"team_id", "dimension", "hour", "value", "amount", "from_credits", "invoiced", "events"'
)


def _backfill_sql(postgres: bool) -> list[str]:
    """One INSERT per grouping: the whole hour, the description, each dimension key."""
    if postgres:
        hour = "date_trunc('hour', \"occurred_at\", 'UTC')"
        pairs = "jsonb_each_text(\"dimensions\")"
    else:
        # Datetimes are stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]+00:00' (UTC).
        hour = "substr(\"occurred_at\", 1, 13) || ':00:00+00:00'"
        pairs = "json_each(\"dimensions\")"
    source = '"usage_records"'
    return [
        f"INSERT INTO \"usage_rollups\" ({_COLUMNS}) SELECT \"team_id\", '', {hour} AS h, '', "
        f"{_SUMS} FROM {source} GROUP BY \"team_id\", h",
        f"INSERT INTO \"usage_rollups\" ({_COLUMNS}) SELECT \"team_id\", '#description', "
        f"{hour} AS h, \"description\", {_SUMS} FROM {source} "
        'WHERE "description" IS NOT NULL GROUP BY "team_id", h, "description"',
        f'INSERT INTO "usage_rollups" ({_COLUMNS}) SELECT "team_id", p."key", {hour} AS h, '
        f'p."value", {_SUMS} FROM {source}, {pairs} AS p '
        'WHERE "dimensions" IS NOT NULL GROUP BY "team_id", p."key", h, p."value"',
    ]


async def _backfill(apps, schema_editor):
    client = schema_editor.client
    for sql in _backfill_sql(client.capabilities.dialect == "postgres"):
        await client.execute_script(sql)


class _RemoveIndexIfPresent(ops.RemoveIndex):
    """Ledger entries by team alone: (team_id, id) serves every reader of it. The index
    exists under its generated name on PostgreSQL; SQLite's was lost when 0003 rebuilt
    the table, so it is dropped only if present."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        await state_editor.client.execute_script(
            'DROP INDEX IF EXISTS "idx_ledger_entr_team_id_212083"'
        )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        await state_editor.client.execute_script(
            'CREATE INDEX IF NOT EXISTS "idx_ledger_entr_team_id_212083" '
            'ON "ledger_entries" ("team_id")'
        )


async def _empty(apps, schema_editor):
    await schema_editor.client.execute_script('DELETE FROM "usage_rollups"')


class Migration(migrations.Migration):
    dependencies = [('credits', '0007_promo_failures_by_user'), ('teams', '0003_invitation_consent')]

    initial = False

    operations = [
        ops.CreateModel(
            name='UsageRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='usage_rollups', on_delete=OnDelete.CASCADE)),
                ('dimension', fields.CharField(max_length=65)),
                ('hour', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('value', fields.CharField(max_length=500)),
                ('amount', fields.BigIntField()),
                ('from_credits', fields.BigIntField()),
                ('invoiced', fields.BigIntField()),
                ('events', fields.BigIntField()),
            ],
            options={'table': 'usage_rollups', 'app': 'credits', 'unique_together': (('team', 'dimension', 'hour', 'value'),), 'pk_attr': 'id', 'table_description': 'Usage summed per team, UTC hour and group, written with the records it sums (in'},
            bases=['Model'],
        ),
        _RemoveIndexIfPresent(
            model_name='LedgerEntry',
            name=None,
            fields=['team_id'],
        ),
        ops.AddIndex(
            model_name='LedgerEntry',
            index=Index(fields=['team_id', 'id']),
        ),
        ops.AddIndex(
            model_name='UsageRecord',
            index=Index(fields=['team_id', 'occurred_at']),
        ),
        ops.RunPython(_backfill, _empty),
    ]
