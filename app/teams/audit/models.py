"""Audit events: append-only, one row per change to a team's billing settings or members."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index

from app.kit.team_rows import TeamRow
from app.teams.models import Team


class AuditAction(StrEnum):
    INVOICED_LIMIT_CHANGED = "INVOICED_LIMIT_CHANGED"
    MEMBER_ADDED = "MEMBER_ADDED"
    MEMBER_REMOVED = "MEMBER_REMOVED"
    MEMBER_ROLE_CHANGED = "MEMBER_ROLE_CHANGED"
    AUTO_TOP_UP_CONFIGURED = "AUTO_TOP_UP_CONFIGURED"
    PAYMENT_METHOD_ADDED = "PAYMENT_METHOD_ADDED"
    PAYMENT_METHOD_REMOVED = "PAYMENT_METHOD_REMOVED"
    DEFAULT_PAYMENT_METHOD_CHANGED = "DEFAULT_PAYMENT_METHOD_CHANGED"
    BILLING_ADDRESS_UPDATED = "BILLING_ADDRESS_UPDATED"
    INVITATION_ACCEPTED = "INVITATION_ACCEPTED"
    INVITATION_DECLINED = "INVITATION_DECLINED"
    INVITATION_CANCELED = "INVITATION_CANCELED"
    MEMBER_LEFT = "MEMBER_LEFT"


class AuditEvent(TeamRow):
    """Inserted in the transaction of the change it records, never updated or deleted."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="audit_events", on_delete=fields.CASCADE
    )
    # Who: the signed-in user's email ("(operator)" appended for platform staff), or
    # "system: <what>" for changes the service makes by itself.
    actor = fields.CharField(max_length=400)
    action = fields.CharEnumField(AuditAction, max_length=40)
    old: fields.JSONField[Any] = fields.JSONField(null=True)
    new: fields.JSONField[Any] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()

    team_id: uuid.UUID

    class Meta:
        table = "audit_events"
        indexes = (Index(fields=("team_id", "id")),)
