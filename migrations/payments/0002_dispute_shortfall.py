"""Chargebacks after spending: what a dispute could not withdraw, who paid it, and a won
dispute's restoration (docs/trust.md, class 7)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Purchase",
            name="shortfall_amount",
            field=fields.BigIntField(default=0),
        ),
        ops.AddField(
            model_name="Purchase",
            name="shortfall_paid",
            field=fields.BigIntField(default=0),
        ),
        ops.AddField(
            model_name="Purchase",
            name="covered_shortfall",
            field=fields.BigIntField(default=0),
        ),
        ops.AddField(
            model_name="Purchase",
            name="dispute_won_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Purchase",
            name="restored_amount",
            field=fields.BigIntField(default=0),
        ),
    ]
