from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.invoices.models import InvoiceKind, InvoiceStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('teams', '0001_initial')]

    initial = True

    operations = [
        ops.CreateModel(
            name='BillingAddress',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.OneToOneField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='billing_address', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('organization', fields.CharField(null=True, max_length=200)),
                ('email', fields.CharField(null=True, max_length=254)),
                ('line1', fields.CharField(max_length=200)),
                ('line2', fields.CharField(null=True, max_length=200)),
                ('city', fields.CharField(max_length=100)),
                ('state', fields.CharField(null=True, max_length=100)),
                ('postal_code', fields.CharField(null=True, max_length=20)),
                ('country', fields.CharField(max_length=2)),
                ('tax_id_type', fields.CharField(null=True, max_length=16)),
                ('tax_id_value', fields.CharField(null=True, max_length=64)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('version', fields.IntField(default=1)),
                ('synced_version', fields.IntField(default=0)),
                ('sync_error', fields.CharField(null=True, max_length=500)),
            ],
            options={'table': 'billing_addresses', 'app': 'invoices', 'pk_attr': 'id', 'table_description': "A team's current billing details (invoices keep their own frozen copy)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Invoice',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='invoices', on_delete=OnDelete.RESTRICT)),
                ('number', fields.CharField(unique=True, max_length=32)),
                ('source_key', fields.CharField(unique=True, max_length=100)),
                ('kind', fields.CharEnumField(description='CREDIT_PURCHASE: CREDIT_PURCHASE\nMONTHLY_USAGE: MONTHLY_USAGE', enum_type=InvoiceKind, max_length=20)),
                ('status', fields.CharEnumField(description='OPEN: OPEN\nPAID: PAID\nPAYMENT_FAILED: PAYMENT_FAILED\nVOID: VOID', enum_type=InvoiceStatus, max_length=20)),
                ('currency', fields.CharField(default='usd', max_length=3)),
                ('period', fields.CharField(null=True, max_length=7)),
                ('period_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('period_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('subtotal_cents', fields.BigIntField()),
                ('tax_cents', fields.BigIntField(default=0)),
                ('total_cents', fields.BigIntField()),
                ('billing_address', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('purchase_id', fields.UUIDField(null=True)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('payment_intent_id', fields.CharField(null=True, max_length=255)),
                ('failure_message', fields.CharField(null=True, max_length=500)),
                ('charge_attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('charging_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'invoices', 'app': 'invoices', 'indexes': [Index(fields=['team_id', 'issued_at']), Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'A legal document: content and number never change after issue, only payment state does.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InvoiceCounter',
            fields=[
                ('series', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=16)),
                ('last_number', fields.BigIntField(default=0)),
            ],
            options={'table': 'invoice_counters', 'app': 'invoices', 'pk_attr': 'series', 'table_description': 'The last number issued in a series ("CL-2026"), locked FOR UPDATE by each issue.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InvoiceLine',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('invoice', fields.ForeignKeyField('invoices.Invoice', source_field='invoice_id', db_constraint=True, to_field='id', related_name='lines', on_delete=OnDelete.CASCADE)),
                ('position', fields.IntField()),
                ('description', fields.CharField(max_length=500)),
                ('quantity', fields.BigIntField(default=1)),
                ('unit_amount_cents', fields.BigIntField()),
                ('amount_cents', fields.BigIntField()),
                ('exact_units', fields.BigIntField(null=True)),
            ],
            options={'table': 'invoice_lines', 'app': 'invoices', 'unique_together': (('invoice', 'position'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PeriodClose',
            fields=[
                ('period', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=7)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'period_closes', 'app': 'invoices', 'pk_attr': 'period', 'table_description': "Progress of a month's close: `completed_at` is set once every team was handled."},
            bases=['Model'],
        ),
    ]
