"""Holds: money reserved for a request under way, and the account's cached sum of them (`held`).

Depends on 0004; another branch adds 0005 beside it: at merge this one is re-pointed at 0005.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.credits.models import HoldStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('credits', '0005_usage_dimensions'), ('teams', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Hold',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='holds', on_delete=OnDelete.CASCADE)),
                ('idempotency_key', fields.CharField(max_length=255)),
                ('amount', fields.BigIntField()),
                ('captured', fields.BigIntField(default=0)),
                ('status', fields.CharEnumField(description='HELD: HELD\nCAPTURED: CAPTURED\nRELEASED: RELEASED\nEXPIRED: EXPIRED', enum_type=HoldStatus, max_length=16)),
                ('description', fields.CharField(null=True, max_length=500)),
                ('dimensions', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('usage', fields.ForeignKeyField('credits.UsageRecord', source_field='usage_id', null=True, db_constraint=True, to_field='id', related_name='holds', on_delete=OnDelete.CASCADE)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'holds', 'app': 'credits', 'unique_together': (('team', 'idempotency_key'),), 'indexes': [Index(fields=['team_id', 'created_at']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'Money reserved for a request under way, drawn from no grant until captured.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='held',
            field=fields.BigIntField(default=0, db_default=0),
        ),
    ]
