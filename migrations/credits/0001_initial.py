from tortoise import migrations
from tortoise.migrations import operations as ops
from app.credits.models import CreditKind, LedgerKind
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('teams', '0001_initial')]

    initial = True

    operations = [
        ops.CreateModel(
            name='ClosedPeriod',
            fields=[
                ('period', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=7)),
                ('closed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'closed_periods', 'app': 'credits', 'pk_attr': 'period', 'table_description': 'A month that has been closed: usage dated inside it is refused.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CreditAccount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.OneToOneField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='account', on_delete=OnDelete.CASCADE)),
                ('free', fields.BigIntField(default=0)),
                ('promotional', fields.BigIntField(default=0)),
                ('prepaid', fields.BigIntField(default=0)),
                ('invoiced_limit', fields.BigIntField(default=0)),
                ('invoicing_suspended', fields.BooleanField(default=False)),
                ('next_expiry_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'credit_accounts', 'app': 'credits', 'pk_attr': 'id', 'table_description': 'One row per team: the lock every money movement takes, and cached balances.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CreditGrant',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='grants', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='FREE: FREE\nPROMOTIONAL: PROMOTIONAL\nPREPAID: PREPAID', enum_type=CreditKind, max_length=16)),
                ('amount', fields.BigIntField()),
                ('remaining', fields.BigIntField()),
                ('description', fields.CharField(null=True, max_length=500)),
                ('granted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'credit_grants', 'app': 'credits', 'indexes': [Index(fields=['team_id', 'remaining'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InvoicedPeriod',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='invoiced_periods', on_delete=OnDelete.CASCADE)),
                ('period', fields.CharField(max_length=7)),
                ('amount', fields.BigIntField(default=0)),
            ],
            options={'table': 'invoiced_periods', 'app': 'credits', 'unique_together': (('team', 'period'),), 'pk_attr': 'id', 'table_description': 'Invoiced usage of one team in one month (UTC), summed exactly in units.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsageRecord',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='usage_records', on_delete=OnDelete.CASCADE)),
                ('idempotency_key', fields.CharField(max_length=255)),
                ('amount', fields.BigIntField()),
                ('from_free', fields.BigIntField()),
                ('from_promotional', fields.BigIntField()),
                ('from_prepaid', fields.BigIntField()),
                ('invoiced', fields.BigIntField()),
                ('description', fields.CharField(null=True, max_length=500)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('occurred_at_given', fields.BooleanField(default=True)),
                ('period', fields.CharField(max_length=7)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'usage_records', 'app': 'credits', 'unique_together': (('team', 'idempotency_key'),), 'indexes': [Index(fields=['team_id', 'period'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='ledger_entries', on_delete=OnDelete.CASCADE)),
                ('grant', fields.ForeignKeyField('credits.CreditGrant', source_field='grant_id', db_constraint=True, to_field='id', related_name='ledger_entries', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='GRANT: GRANT\nUSAGE: USAGE\nEXPIRY: EXPIRY\nWITHDRAWAL: WITHDRAWAL', enum_type=LedgerKind, max_length=16)),
                ('amount', fields.BigIntField()),
                ('usage', fields.ForeignKeyField('credits.UsageRecord', source_field='usage_id', null=True, db_constraint=True, to_field='id', related_name='ledger_entries', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'ledger_entries', 'app': 'credits', 'indexes': [Index(fields=['grant_id']), Index(fields=['team_id'])], 'pk_attr': 'id', 'table_description': 'Append-only: rows are inserted, never updated or deleted.'},
            bases=['Model'],
        ),
    ]
