"""Team rows keyed by (team_id, id), and team API keys found through `api_key_secrets`.

On PostgreSQL the primary keys of memberships, invitations and team_api_keys become
(team_id, id), so every key of a table distributed by team_id holds team_id (Citus needs
it; docs/distribution-keys.md). SQLite, never distributed, keeps its single-column keys.
The secret of a team key is no longer unique in `team_api_keys` (a global unique index
cannot live on a table sharded by team): `api_key_secrets` (secret_hash -> team, key),
filled here from the keys already issued, holds that uniqueness and answers who owns a
secret with one probe.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


_TEAM_TABLES = ("memberships", "invitations", "team_api_keys")


def _primary_keys(columns):
    return [
        f'ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey", '
        f'ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({columns})'
        for table in _TEAM_TABLES
    ]


async def _forward(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script(
        'INSERT INTO "api_key_secrets" ("secret_hash", "team_id", "key_id") '
        'SELECT "secret_hash", "team_id", "id" FROM "team_api_keys"'
    )
    if client.capabilities.dialect == "postgres":
        for sql in _primary_keys('"team_id", "id"'):
            await client.execute_script(sql)
    else:
        # SQLite's rebuild of the table (secret_hash no longer unique) drops its indexes.
        await client.execute_script(
            'CREATE INDEX IF NOT EXISTS "idx_team_api_ke_team_id_06c62f" '
            'ON "team_api_keys" ("team_id", "created_at")'
        )


async def _backward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        for sql in _primary_keys('"id"'):
            await client.execute_script(sql)
    await client.execute_script('DELETE FROM "api_key_secrets"')


class Migration(migrations.Migration):
    dependencies = [("teams", "0003_invitation_consent")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ApiKeySecret",
            fields=[
                ("secret_hash", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("team_id", fields.UUIDField()),
                ("key_id", fields.UUIDField()),
            ],
            options={
                "table": "api_key_secrets",
                "app": "teams",
                "pk_attr": "secret_hash",
                "table_description": "Which team holds the key with this secret: the first read of an authentication.",
            },
            bases=["Model"],
        ),
        ops.AlterField(
            model_name="TeamApiKey",
            name="secret_hash",
            field=fields.CharField(max_length=64),
        ),
        ops.RunPython(_forward, _backward),
    ]
