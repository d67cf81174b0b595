"""Ledger entries: no database constraint on the team and usage links (the grant's stays).

AlterField records the new state; it does not drop constraints, so the PostgreSQL
ones are dropped by name here. SQLite would need a table rebuild for it and is not
where throughput matters: its constraints stay.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

_CONSTRAINTS = ("ledger_entries_team_id_fkey", "ledger_entries_usage_id_fkey")


async def _drop_constraints(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    for name in _CONSTRAINTS:
        await schema_editor.client.execute_script(
            f'ALTER TABLE "ledger_entries" DROP CONSTRAINT IF EXISTS "{name}"'
        )


async def _restore_constraints(apps, schema_editor):
    if schema_editor.client.capabilities.dialect != "postgres":
        return
    for name, column, table in zip(_CONSTRAINTS, ("team_id", "usage_id"), ("teams", "usage_records")):
        await schema_editor.client.execute_script(
            f'ALTER TABLE "ledger_entries" ADD CONSTRAINT "{name}" FOREIGN KEY ("{column}") '
            f'REFERENCES "{table}" ("id") ON DELETE CASCADE'
        )


class Migration(migrations.Migration):
    dependencies = [('credits', '0002_credit_programs'), ('teams', '0001_initial')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='LedgerEntry',
            name='team',
            field=fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=False, to_field='id', related_name='ledger_entries', on_delete=OnDelete.CASCADE),
        ),
        ops.AlterField(
            model_name='LedgerEntry',
            name='usage',
            field=fields.ForeignKeyField('credits.UsageRecord', source_field='usage_id', null=True, db_constraint=False, to_field='id', related_name='ledger_entries', on_delete=OnDelete.CASCADE),
        ),
        ops.RunPython(_drop_constraints, _restore_constraints),
    ]
