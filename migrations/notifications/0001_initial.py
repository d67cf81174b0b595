"""Notifications: the outbox, team settings, webhook endpoints, deliveries."""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.notifications.models import Channel, DeliveryStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="NotificationSettings",
            fields=[
                (
                    "team_id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "emails",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "notification_settings",
                "app": "notifications",
                "pk_attr": "team_id",
                "table_description": "A team's extra email recipients (its admins always get billing emails).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OutboxEvent",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("type", fields.CharField(max_length=64)),
                ("team_id", fields.UUIDField(null=True)),
                (
                    "data",
                    fields.JSONField(
                        encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "dispatched_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "outbox_events",
                "app": "notifications",
                "indexes": [Index(fields=["dispatched_at", "id"])],
                "pk_attr": "id",
                "table_description": "One event to tell: its public id is `event_id(id)`, ordered by `id` per team.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="WebhookEndpoint",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("url", fields.CharField(max_length=2000)),
                (
                    "events",
                    fields.JSONField(
                        encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("secret", fields.CharField(max_length=100)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("deleted_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "webhook_endpoints",
                "app": "notifications",
                "pk_attr": "id",
                "table_description": "An operator-managed receiver of the platform's events.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Delivery",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "event",
                    fields.ForeignKeyField(
                        "notifications.OutboxEvent",
                        source_field="event_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="deliveries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "channel",
                    fields.CharEnumField(
                        description="EMAIL: EMAIL\nWEBHOOK: WEBHOOK",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                (
                    "endpoint",
                    fields.ForeignKeyField(
                        "notifications.WebhookEndpoint",
                        source_field="endpoint_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="deliveries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("target", fields.CharField(max_length=320)),
                (
                    "status",
                    fields.CharEnumField(
                        default=DeliveryStatus.PENDING,
                        description="PENDING: PENDING\nDELIVERED: DELIVERED\nFAILED: FAILED",
                        enum_type=DeliveryStatus,
                        max_length=16,
                    ),
                ),
                ("attempts", fields.IntField(default=0)),
                ("next_attempt_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("last_error", fields.CharField(null=True, max_length=500)),
                ("last_status_code", fields.IntField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "delivered_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "notification_deliveries",
                "app": "notifications",
                "unique_together": (("event", "channel", "target"),),
                "indexes": [
                    Index(fields=["status", "next_attempt_at"]),
                    Index(fields=["endpoint_id", "created_at"]),
                ],
                "pk_attr": "id",
                "table_description": "One event to one recipient or endpoint: tried until it succeeds or its time runs out.",
            },
            bases=["Model"],
        ),
    ]
