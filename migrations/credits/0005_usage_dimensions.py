"""Usage records keep their dimensions: a flat JSON map (JSONB on PostgreSQL), null when none.

A nullable column without a default: adding it rewrites no row.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('credits', '0004_grants_indexed_by_team')]

    initial = False

    operations = [
        ops.AddField(
            model_name='UsageRecord',
            name='dimensions',
            field=fields.JSONField(null=True),
        ),
    ]
