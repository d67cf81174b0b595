"""Credit grants: indexed by team alone, so updating `remaining` (every usage event) is a HOT update."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('credits', '0003_ledger_links_unconstrained'), ('teams', '0001_initial')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='CreditGrant',
            name=None,
            fields=['team_id', 'remaining'],
        ),
        ops.AddIndex(
            model_name='CreditGrant',
            index=Index(fields=['team_id']),
        ),
    ]
