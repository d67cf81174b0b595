"""Notifications on the account row: invoiced-limit thresholds, the low-balance threshold, blocked.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0008_usage_rollups"),
        ("teams", "0003_invitation_consent"),
    ]

    initial = False

    operations = [
        ops.AddField(
            model_name="CreditAccount",
            name="alert_thresholds",
            field=fields.CharField(default="80,100", db_default="80,100", max_length=64),
        ),
        ops.AddField(
            model_name="CreditAccount",
            name="blocked",
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name="CreditAccount",
            name="low_balance_threshold",
            field=fields.BigIntField(null=True),
        ),
        ops.AddIndex(
            model_name="CreditAccount",
            index=Index(fields=["blocked"]),
        ),
    ]
