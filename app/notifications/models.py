"""Notification settings, webhook endpoints and the deliveries made from outbox events."""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.events.outbox import OutboxEvent


class NotificationSettings(Model):
    """A team's extra email recipients (its admins always get billing emails)."""

    team_id = fields.UUIDField(primary_key=True)
    emails: list[str] = fields.JSONField(default=list)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "notification_settings"


class WebhookEndpoint(Model):
    """An operator-managed receiver of the platform's events."""

    id = fields.UUIDField(primary_key=True)
    url = fields.CharField(max_length=2000)
    events: list[str] = fields.JSONField()
    # Kept as issued: signing needs the secret itself (a hash cannot sign). Readable only
    # by whoever reads the database; shown to the operator once (docs/notifications.md).
    secret = fields.CharField(max_length=100)
    created_at = fields.DatetimeField()
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_endpoints"


class Channel(StrEnum):
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # gave up: its time ran out, or it can never be sent


class Delivery(Model):
    """One event to one recipient or endpoint: tried until it succeeds or its time runs out."""

    id = fields.UUIDField(primary_key=True)
    event: fields.ForeignKeyRelation[OutboxEvent] = fields.ForeignKeyField(
        "notifications.OutboxEvent", related_name="deliveries", on_delete=fields.CASCADE
    )
    channel = fields.CharEnumField(Channel, max_length=16)
    endpoint: fields.ForeignKeyNullableRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "notifications.WebhookEndpoint",
        related_name="deliveries",
        null=True,
        on_delete=fields.CASCADE,
    )
    # The email address, or the endpoint's id: (event, channel, target) is unique.
    target = fields.CharField(max_length=320)
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_error = fields.CharField(max_length=500, null=True)
    last_status_code = fields.IntField(null=True)
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)

    event_id: int
    endpoint_id: uuid.UUID | None

    class Meta:
        table = "notification_deliveries"
        unique_together = (("event", "channel", "target"),)
        indexes = (
            Index(fields=("status", "next_attempt_at")),
            Index(fields=("endpoint_id", "created_at")),
        )
