"""Invitations wait for consent: who invited, and an index to list them by email."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("teams", "0002_api_keys")]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name="Invitation",
            options={
                "table": "invitations",
                "app": "teams",
                "unique_together": (("team", "email"),),
                "indexes": [Index(fields=["email"])],
                "pk_attr": "id",
                "table_description": "A membership offered to an email: it exists only once its owner accepts.",
            },
        ),
        ops.AddField(
            model_name="Invitation",
            name="invited_by",
            field=fields.CharField(null=True, max_length=400),
        ),
        ops.AddIndex(
            model_name="Invitation",
            index=Index(fields=["email"]),
        ),
    ]
