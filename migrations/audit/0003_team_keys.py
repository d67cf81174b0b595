"""Audit events keyed by (team_id, id) on PostgreSQL (a table distributed by team_id:
docs/distribution-keys.md). SQLite, never distributed, keeps its single-column key."""

from tortoise import migrations
from tortoise.migrations import operations as ops


def _primary_key(columns):
    return (
        'ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_pkey", '
        f'ADD CONSTRAINT "audit_events_pkey" PRIMARY KEY ({columns})'
    )


async def _forward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script(_primary_key('"team_id", "id"'))


async def _backward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script(_primary_key('"id"'))


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_invitation_actions")]

    initial = False

    operations = [ops.RunPython(_forward, _backward)]
