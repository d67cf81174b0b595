"""API keys: service keys and team API keys, stored as hashes (docs/keys.md)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('teams', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ServiceKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('scopes', fields.CharField(max_length=200)),
                ('prefix', fields.CharField(max_length=16)),
                ('secret_hash', fields.CharField(unique=True, max_length=64)),
                ('created_by', fields.CharField(max_length=400)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_by', fields.CharField(null=True, max_length=400)),
            ],
            options={'table': 'service_keys', 'app': 'teams', 'pk_attr': 'id'},
            bases=['ApiKeyFields'],
        ),
        ops.CreateModel(
            name='TeamApiKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('scopes', fields.CharField(max_length=200)),
                ('prefix', fields.CharField(max_length=16)),
                ('secret_hash', fields.CharField(unique=True, max_length=64)),
                ('created_by', fields.CharField(max_length=400)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_by', fields.CharField(null=True, max_length=400)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'team_api_keys', 'app': 'teams', 'indexes': [Index(fields=['team_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['ApiKeyFields'],
        ),
    ]
