from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.payments.models import PaymentMethodType, PurchaseMethod, PurchaseStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('credits', '0001_initial'), ('teams', '0001_initial')]

    initial = True

    operations = [
        ops.CreateModel(
            name='PaymentMethod',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='payment_methods', on_delete=OnDelete.CASCADE)),
                ('stripe_id', fields.CharField(unique=True, max_length=255)),
                ('type', fields.CharEnumField(description='CARD: CARD\nBANK_ACCOUNT: BANK_ACCOUNT', enum_type=PaymentMethodType, max_length=16)),
                ('brand', fields.CharField(null=True, max_length=100)),
                ('last4', fields.CharField(max_length=4)),
                ('exp_month', fields.IntField(null=True)),
                ('exp_year', fields.IntField(null=True)),
                ('is_default', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('removed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payment_methods', 'app': 'payments', 'indexes': [Index(fields=['team_id', 'removed_at'])], 'pk_attr': 'id', 'table_description': 'A card or bank account on file. Removed methods keep their row (`removed_at`) so'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Purchase',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='purchases', on_delete=OnDelete.CASCADE)),
                ('amount', fields.BigIntField()),
                ('method', fields.CharEnumField(description='CARD: CARD\nBANK_TRANSFER: BANK_TRANSFER', enum_type=PurchaseMethod, max_length=16)),
                ('status', fields.CharEnumField(description='REQUIRES_ACTION: REQUIRES_ACTION\nPROCESSING: PROCESSING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED\nCANCELED: CANCELED', enum_type=PurchaseStatus, max_length=16)),
                ('payment_method', fields.ForeignKeyField('payments.PaymentMethod', source_field='payment_method_id', null=True, db_constraint=True, to_field='id', related_name='purchases', on_delete=OnDelete.SET_NULL)),
                ('pending_payment_method', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('payment_intent_id', fields.CharField(null=True, unique=True, max_length=255)),
                ('failure_reason', fields.CharField(null=True, max_length=500)),
                ('client_secret', fields.CharField(null=True, max_length=500)),
                ('expected_settlement_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('off_session', fields.BooleanField(default=False)),
                ('reason', fields.CharField(null=True, max_length=100)),
                ('idempotency_key', fields.CharField(null=True, max_length=255)),
                ('request_hash', fields.CharField(max_length=64)),
                ('grant', fields.ForeignKeyField('credits.CreditGrant', source_field='grant_id', null=True, db_constraint=True, to_field='id', related_name='purchases', on_delete=OnDelete.SET_NULL)),
                ('refunded_amount', fields.BigIntField(default=0)),
                ('disputed_amount', fields.BigIntField(default=0)),
                ('withdrawn_amount', fields.BigIntField(default=0)),
                ('refunded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('disputed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'purchases', 'app': 'payments', 'unique_together': (('team', 'idempotency_key'),), 'indexes': [Index(fields=['team_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A purchase of prepaid credits. Credited (a PREPAID `grant`) exactly once, when the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StripeCustomer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.OneToOneField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='stripe_customer', on_delete=OnDelete.CASCADE)),
                ('stripe_id', fields.CharField(unique=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stripe_customers', 'app': 'payments', 'pk_attr': 'id', 'table_description': "The team's Stripe customer: one per team, created on first need."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StripeEvent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('type', fields.CharField(max_length=100)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('outcome', fields.CharField(max_length=100)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stripe_events', 'app': 'payments', 'pk_attr': 'id', 'table_description': 'The webhook inbox: each Stripe event is handled once (unique on its id).'},
            bases=['Model'],
        ),
    ]
