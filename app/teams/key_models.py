"""API keys: service keys (the platform's own systems) and team API keys (a team's scripts).

Only a hash of each secret is stored (docs/keys.md says why SHA-256 suits them).
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.kit.team_rows import TeamRow
from app.teams.models import Team


class ServiceScope(StrEnum):
    """What a service key may do, spelled as `creditline keys create --scope` takes it."""

    USAGE_WRITE = "usage:write"
    USAGE_READ = "usage:read"


class TeamKeyScope(StrEnum):
    """A team key acts as a member (BILLING_READ) or as an admin of billing (BILLING_WRITE)."""

    BILLING_READ = "BILLING_READ"
    BILLING_WRITE = "BILLING_WRITE"


class ApiKeyFields(Model):
    """What both kinds of key hold."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=100)
    # Space-separated scope names.
    scopes = fields.CharField(max_length=200)
    # The first characters of the secret, shown so a holder can tell keys apart.
    prefix = fields.CharField(max_length=16)
    # (And `secret_hash`, hex SHA-256 of the whole secret: the only trace of it in the
    # database; each kind says how it is unique.)
    # Who made and who revoked the key, as the audit trail names people.
    created_by = fields.CharField(max_length=400)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    revoked_by = fields.CharField(max_length=400, null=True)

    class Meta:
        abstract = True


class ServiceKey(ApiKeyFields):
    secret_hash = fields.CharField(max_length=64, unique=True)

    class Meta:
        table = "service_keys"


class TeamApiKey(ApiKeyFields, TeamRow):
    # Unique through its `ApiKeySecret` row (the lookup authentication reads).
    secret_hash = fields.CharField(max_length=64)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="api_keys", on_delete=fields.CASCADE
    )

    team_id: uuid.UUID

    class Meta:
        table = "team_api_keys"
        indexes = (Index(fields=("team_id", "created_at")),)


class ApiKeySecret(Model):
    """Which team holds the key with this secret: the first read of an authentication.

    `team_api_keys` is distributed by team, so a key cannot be found by its secret alone
    without asking every shard; this lookup, distributed by `secret_hash`, answers with
    one probe, then the key is read by (team_id, id). Written in the key's transaction;
    it has no foreign key (it is not co-located with the teams), so a row whose key is
    gone finds no key and authenticates nothing (app/teams/keys.py)."""

    secret_hash = fields.CharField(max_length=64, primary_key=True)
    team_id = fields.UUIDField()
    key_id = fields.UUIDField()

    class Meta:
        table = "api_key_secrets"
