"""Users, teams, memberships and pending invitations."""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.kit.team_rows import TeamRow


class Role(StrEnum):
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


class User(Model):
    id = fields.UUIDField(primary_key=True)
    subject = fields.CharField(max_length=255, unique=True)
    email = fields.CharField(max_length=320, db_index=True)
    name = fields.CharField(max_length=255, null=True)
    is_operator = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "users"


class Team(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()

    class Meta:
        table = "teams"


class Membership(TeamRow):
    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="memberships", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "teams.User", related_name="memberships", on_delete=fields.CASCADE
    )
    role = fields.CharEnumField(Role, max_length=16)
    created_at = fields.DatetimeField()

    team_id: uuid.UUID
    user_id: uuid.UUID

    class Meta:
        table = "memberships"
        unique_together = (("team", "user"),)


class Invitation(TeamRow):
    """A membership offered to an email: it exists only once its owner accepts."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="invitations", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=320)
    role = fields.CharEnumField(Role, max_length=16)
    # The inviting admin's email as it was then; None for invitations from before.
    invited_by = fields.CharField(max_length=400, null=True)
    created_at = fields.DatetimeField()

    team_id: uuid.UUID

    class Meta:
        table = "invitations"
        unique_together = (("team", "email"),)
        indexes = (Index(fields=("email",)),)
