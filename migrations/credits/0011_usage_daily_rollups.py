"""Daily usage rollups beside the hourly ones, filled from the hourly rows already
stored (the usage statement keeps both from now on; docs/usage-history.md).

PostgreSQL: the primary key is (team_id, id), like every team table (0010_team_keys).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

_COLUMNS = '"team_id", "dimension", "day", "value", "amount", "from_credits", "invoiced", "events"'
_SUMS = 'sum("amount"), sum("from_credits"), sum("invoiced"), sum("events")'


def backfill_sql(postgres: bool) -> str:
    """The daily rows, summed from the hourly ones."""
    if postgres:
        day = "date_trunc('day', \"hour\", 'UTC')"
    else:
        # Datetimes are stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]+00:00' (UTC).
        day = "substr(\"hour\", 1, 10) || ' 00:00:00+00:00'"
    return (
        f'INSERT INTO "usage_daily_rollups" ({_COLUMNS}) SELECT "team_id", "dimension", '
        f'{day} AS d, "value", {_SUMS} FROM "usage_rollups" '
        'GROUP BY "team_id", "dimension", d, "value"'
    )


async def _keys_and_backfill(apps, schema_editor):
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    if postgres:
        _, rows = await client.execute_query(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'usage_daily_rollups'::regclass "
            "AND contype = 'p'"
        )
        for row in rows:
            await client.execute_script(
                f'ALTER TABLE "usage_daily_rollups" DROP CONSTRAINT "{row["conname"]}"'
            )
        await client.execute_script(
            'ALTER TABLE "usage_daily_rollups" ADD PRIMARY KEY ("team_id", "id")'
        )
    await client.execute_script(backfill_sql(postgres))


async def _empty(apps, schema_editor):
    await schema_editor.client.execute_script('DELETE FROM "usage_daily_rollups"')


class Migration(migrations.Migration):
    dependencies = [('credits', '0010_team_keys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='UsageDailyRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='usage_daily_rollups', on_delete=OnDelete.CASCADE)),
                ('dimension', fields.CharField(max_length=65)),
                ('day', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('value', fields.CharField(max_length=500)),
                ('amount', fields.BigIntField()),
                ('from_credits', fields.BigIntField()),
                ('invoiced', fields.BigIntField()),
                ('events', fields.BigIntField()),
            ],
            options={'table': 'usage_daily_rollups', 'app': 'credits', 'unique_together': (('team', 'dimension', 'day', 'value'),), 'pk_attr': 'id', 'table_description': "`UsageRollup`'s sums per UTC day instead of hour, written by the same statement:"},
            bases=['Model'],
        ),
        ops.RunPython(_keys_and_backfill, _empty),
    ]
