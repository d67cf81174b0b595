"""Invoice keys hold team_id: lines carry their invoice's team, numbers and source keys
are unique per team, and on PostgreSQL the primary keys are (team_id, id) with the
line's link to its invoice (team_id, invoice_id) -> invoices (team_id, id).

A table distributed by team_id can only enforce keys that hold team_id
(docs/distribution-keys.md). Invoice numbers stay unique across teams: each is taken from
its series' counter row, locked while the invoice is inserted. SQLite, never distributed,
keeps single-column primary keys and its single-column link from line to invoice.
Existing lines get their team from their invoice before the column becomes required.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint


_TEAM_TABLES = ("billing_addresses", "invoices", "invoice_lines")


async def _backfill(apps, schema_editor):
    await schema_editor.client.execute_script(
        'UPDATE "invoice_lines" SET "team_id" = (SELECT i."team_id" FROM "invoices" i '
        'WHERE i."id" = "invoice_lines"."invoice_id") WHERE "team_id" IS NULL'
    )


async def _nothing(apps, schema_editor):
    return None


def _keys(pk_columns, link):
    statements = ['ALTER TABLE "invoice_lines" DROP CONSTRAINT "invoice_lines_invoice_id_fkey"']
    statements += [
        f'ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey", '
        f'ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({pk_columns})'
        for table in _TEAM_TABLES
    ]
    # Same name as Tortoise's single-column constraint, so its later operations on the
    # field find it.
    statements.append(
        'ALTER TABLE "invoice_lines" ADD CONSTRAINT "invoice_lines_invoice_id_fkey" '
        f'FOREIGN KEY {link} ON DELETE CASCADE'
    )
    return statements


async def _composite(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        for sql in _keys('"team_id", "id"', '("team_id", "invoice_id") REFERENCES "invoices" ("team_id", "id")'):
            await client.execute_script(sql)
        return
    # SQLite's rebuilds of the tables (a unique dropped, a column made required) drop
    # their other indexes: made again under their names.
    await client.execute_script(
        'CREATE INDEX IF NOT EXISTS "idx_invoices_team_id_dd18e8" ON "invoices" ("team_id", "issued_at");'
        'CREATE INDEX IF NOT EXISTS "idx_invoices_status_5dee8c" ON "invoices" ("status", "next_attempt_at")'
    )


async def _single(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        for sql in _keys('"id"', '("invoice_id") REFERENCES "invoices" ("id")'):
            await client.execute_script(sql)


class _RemoveLineUnique(ops.RemoveConstraint):
    """(invoice_id, position) gives way to (team_id, invoice_id, position). On SQLite it is
    part of the table's definition (no index to drop): the rebuild that makes team_id
    required, from the state without it, leaves it out."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.client.capabilities.dialect != "postgres":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0002_seller"), ("teams", "0004_team_keys")]

    initial = False

    operations = [
        ops.AlterField(
            model_name="Invoice",
            name="number",
            field=fields.CharField(max_length=32),
        ),
        ops.AlterField(
            model_name="Invoice",
            name="source_key",
            field=fields.CharField(max_length=100),
        ),
        ops.AddConstraint(
            model_name="Invoice",
            constraint=UniqueConstraint(fields=("team", "number"), name=None),
        ),
        ops.AddConstraint(
            model_name="Invoice",
            constraint=UniqueConstraint(fields=("team", "source_key"), name=None),
        ),
        _RemoveLineUnique(
            model_name="InvoiceLine",
            name=None,
            fields=["invoice", "position"],
        ),
        ops.AddField(
            model_name="InvoiceLine",
            name="team",
            field=fields.ForeignKeyField("teams.Team", source_field="team_id", null=True, db_constraint=True, to_field="id", related_name="invoice_lines", on_delete=OnDelete.CASCADE),
        ),
        ops.RunPython(_backfill, _nothing),
        ops.AlterField(
            model_name="InvoiceLine",
            name="team",
            field=fields.ForeignKeyField("teams.Team", source_field="team_id", db_constraint=True, to_field="id", related_name="invoice_lines", on_delete=OnDelete.CASCADE),
        ),
        ops.AlterModelOptions(
            name="InvoiceLine",
            options={
                "table": "invoice_lines",
                "app": "invoices",
                "unique_together": (("team", "invoice", "position"),),
                "pk_attr": "id",
                "table_description": "One line of an invoice; it carries its invoice's team (its shard on Citus).",
            },
        ),
        ops.AddConstraint(
            model_name="InvoiceLine",
            constraint=UniqueConstraint(fields=("team", "invoice", "position"), name=None),
        ),
        ops.RunPython(_composite, _single),
    ]
