from tortoise import migrations
from tortoise.migrations import operations as ops
from app.credits.models import AlertKind, TopUpStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('credits', '0001_initial'), ('teams', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AutoTopUpAttempt',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='auto_top_ups', on_delete=OnDelete.CASCADE)),
                ('amount', fields.BigIntField()),
                ('status', fields.CharEnumField(description='PENDING: PENDING\nPROCESSING: PROCESSING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED\nSKIPPED: SKIPPED', enum_type=TopUpStatus, max_length=16)),
                ('period', fields.CharField(max_length=7)),
                ('purchase_id', fields.CharField(null=True, max_length=64)),
                ('failure_reason', fields.CharField(null=True, max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auto_top_up_attempts', 'app': 'credits', 'indexes': [Index(fields=['team_id', 'created_at']), Index(fields=['status', 'updated_at'])], 'pk_attr': 'id', 'table_description': 'One auto top-up decision and its outcome (the caps count these rows).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BillingAlert',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='billing_alerts', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='INVOICED_LIMIT_80: INVOICED_LIMIT_80\nINVOICED_LIMIT_100: INVOICED_LIMIT_100\nCREDITS_LOW: CREDITS_LOW\nCREDITS_EXHAUSTED: CREDITS_EXHAUSTED\nAUTO_TOP_UP_FAILED: AUTO_TOP_UP_FAILED\nPAYMENT_FAILED: PAYMENT_FAILED', enum_type=AlertKind, max_length=32)),
                ('message', fields.CharField(max_length=500)),
                ('period', fields.CharField(max_length=7)),
                ('dedupe_key', fields.CharField(max_length=120)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'billing_alerts', 'app': 'credits', 'unique_together': (('team', 'kind', 'dedupe_key'),), 'indexes': [Index(fields=['team_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'An alert raised once per crossing per month: (team, kind, dedupe_key) is unique.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PromoCode',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('amount', fields.BigIntField()),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('max_redemptions', fields.IntField(null=True)),
                ('redemptions', fields.IntField(default=0)),
                ('credit_validity_days', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'promo_codes', 'app': 'credits', 'pk_attr': 'id', 'table_description': 'A code worth promotional credits, stored trimmed and upper-cased.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PromoFailure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='promo_failures', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'promo_failures', 'app': 'credits', 'indexes': [Index(fields=['team_id', 'created_at']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'A failed redemption, kept for an hour: the guessing throttle counts these.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PromoRedemption',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('promo_code', fields.ForeignKeyField('credits.PromoCode', source_field='promo_code_id', db_constraint=True, to_field='id', related_name='redemptions_made', on_delete=OnDelete.CASCADE)),
                ('team', fields.ForeignKeyField('teams.Team', source_field='team_id', db_constraint=True, to_field='id', related_name='promo_redemptions', on_delete=OnDelete.CASCADE)),
                ('grant', fields.ForeignKeyField('credits.CreditGrant', source_field='grant_id', db_constraint=True, to_field='id', related_name='promo_redemptions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'promo_redemptions', 'app': 'credits', 'unique_together': (('promo_code', 'team'),), 'pk_attr': 'id', 'table_description': "One team's redemption of one code: the unique key makes it once per team."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='auto_top_up_amount',
            field=fields.BigIntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='auto_top_up_enabled',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='auto_top_up_monthly_limit',
            field=fields.BigIntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='auto_top_up_paused_reason',
            field=fields.CharField(null=True, max_length=500),
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='auto_top_up_pending',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='auto_top_up_threshold',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='CreditAccount',
            name='funding_seq',
            field=fields.BigIntField(default=0, db_default=0),
        ),
        ops.AddIndex(
            model_name='CreditAccount',
            index=Index(fields=['next_expiry_at']),
        ),
    ]
