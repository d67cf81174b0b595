from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.teams.audit.models import AuditAction
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('teams', '0001_initial')]

    initial = True

    operations = [
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='audit_events', on_delete=OnDelete.CASCADE)),
                ('actor', fields.CharField(max_length=400)),
                ('action', fields.CharEnumField(description='INVOICED_LIMIT_CHANGED: INVOICED_LIMIT_CHANGED\nMEMBER_ADDED: MEMBER_ADDED\nMEMBER_REMOVED: MEMBER_REMOVED\nMEMBER_ROLE_CHANGED: MEMBER_ROLE_CHANGED\nAUTO_TOP_UP_CONFIGURED: AUTO_TOP_UP_CONFIGURED\nPAYMENT_METHOD_ADDED: PAYMENT_METHOD_ADDED\nPAYMENT_METHOD_REMOVED: PAYMENT_METHOD_REMOVED\nDEFAULT_PAYMENT_METHOD_CHANGED: DEFAULT_PAYMENT_METHOD_CHANGED\nBILLING_ADDRESS_UPDATED: BILLING_ADDRESS_UPDATED', enum_type=AuditAction, max_length=40)),
                ('old', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('new', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'audit_events', 'app': 'audit', 'indexes': [Index(fields=['team_id', 'id'])], 'pk_attr': 'id', 'table_description': 'Inserted in the transaction of the change it records, never updated or deleted.'},
            bases=['Model'],
        ),
    ]
