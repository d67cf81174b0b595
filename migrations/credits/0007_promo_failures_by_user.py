"""PromoFailure: who tried, so the guessing throttle counts a user across all their teams."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('credits', '0006_holds'), ('teams', '0001_initial')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='PromoFailure',
            options={'table': 'promo_failures', 'app': 'credits', 'indexes': [Index(fields=['team_id', 'created_at']), Index(fields=['created_at']), Index(fields=['user_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A failed redemption, kept for an hour: the guessing throttle counts these, by team'},
        ),
        ops.AddField(
            model_name='PromoFailure',
            name='user_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddIndex(
            model_name='PromoFailure',
            index=Index(fields=['user_id', 'created_at']),
        ),
    ]
