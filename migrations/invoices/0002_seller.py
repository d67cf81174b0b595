"""Invoices keep the seller as configured at issue, and the payment method that paid."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Invoice",
            name="seller",
            field=fields.JSONField(
                null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
            ),
        ),
        ops.AddField(
            model_name="Invoice",
            name="payment_method_id",
            field=fields.UUIDField(null=True),
        ),
    ]
