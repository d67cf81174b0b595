"""API keys in GraphQL: service keys (operators) and team API keys (a team's admins).

A secret appears once, in the payload of the mutation that made it. Keys never manage
keys: every resolver here asks for a person (`viewer()`/`operator()`). docs/keys.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from app.billing import callers
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.payloads import payload_errors, utc
from app.kit.errors import Forbidden
from app.teams import keys
from app.teams import service as teams
from app.teams.key_models import ApiKeyFields, TeamKeyScope
from app.teams.key_models import ServiceKey as ServiceKeyModel
from app.teams.key_models import TeamApiKey as TeamApiKeyModel
from app.teams.key_secrets import KeyKind
from app.teams.keyring import ring
from app.teams.models import Role

strawberry.enum(TeamKeyScope, name="TeamApiKeyScope")
TeamApiKeyScope = TeamKeyScope


def _last_used(kind: KeyKind, key: ApiKeyFields) -> datetime | None:
    """The stored time, or this process's newer use not yet written (flushed in batches)."""
    noted = ring.last_used(kind, key.id)
    stored = key.last_used_at
    if noted is None or (stored is not None and stored >= noted):
        return stored
    return noted


@strawberry.type(description="A key for the platform's own systems, e.g. the metering gateway.")
class ServiceKey:
    id: strawberry.ID
    name: str
    scopes: list[str] = strawberry.field(description='e.g. "usage:write", "usage:read"')
    prefix: str = strawberry.field(description="the secret's first characters")
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="recorded in batches: may trail the newest use by a minute"
    )
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ServiceKeyModel) -> ServiceKey:
        return cls(
            id=strawberry.ID(str(key.id)),
            name=key.name,
            scopes=keys.scope_names(key),
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=_last_used(KeyKind.SERVICE, key),
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


@strawberry.type(description="A key for a team's own scripts, acting on that team only.")
class TeamApiKey:
    id: strawberry.ID
    name: str
    scopes: list[TeamApiKeyScope]
    prefix: str = strawberry.field(description="the secret's first characters")
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="recorded in batches: may trail the newest use by a minute"
    )
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: TeamApiKeyModel) -> TeamApiKey:
        return cls(
            id=strawberry.ID(str(key.id)),
            name=key.name,
            scopes=[TeamKeyScope(s) for s in keys.scope_names(key)],
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=_last_used(KeyKind.TEAM, key),
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


@strawberry.input
class CreateServiceKeyInput:
    name: str
    scopes: list[str] = strawberry.field(description='"usage:write" and/or "usage:read"')
    expires_at: datetime | None = None


@strawberry.type
class CreateServiceKeyPayload:
    key: ServiceKey | None = None
    secret: str | None = strawberry.field(
        default=None, description="shown once: only its hash is kept"
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeServiceKeyInput:
    key_id: strawberry.ID


@strawberry.type
class RevokeServiceKeyPayload:
    key: ServiceKey | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateTeamApiKeyInput:
    team_id: strawberry.ID
    name: str
    scopes: list[TeamApiKeyScope] = strawberry.field(
        description="BILLING_READ acts as a member, BILLING_WRITE as an admin of billing"
    )
    expires_at: datetime | None = None


@strawberry.type
class CreateTeamApiKeyPayload:
    api_key: TeamApiKey | None = None
    secret: str | None = strawberry.field(
        default=None, description="shown once: only its hash is kept"
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeTeamApiKeyInput:
    team_id: strawberry.ID
    key_id: strawberry.ID


@strawberry.type
class RevokeTeamApiKeyPayload:
    api_key: TeamApiKey | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class KeysMutation:
    @strawberry.mutation(description="Operator only. The secret is in the payload, once.")
    @payload_errors(CreateServiceKeyPayload)
    async def create_service_key(
        self, info: Info, input: CreateServiceKeyInput
    ) -> CreateServiceKeyPayload:
        operator = await info.context.operator()
        issued = await keys.create_service_key(
            input.name,
            input.scopes,
            actor=callers.actor_name(operator),
            expires_at=utc(input.expires_at),
        )
        return CreateServiceKeyPayload(key=ServiceKey.of(issued.key), secret=issued.secret)

    @strawberry.mutation(description="Operator only. Every server refuses the key within seconds.")
    @payload_errors(RevokeServiceKeyPayload)
    async def revoke_service_key(
        self, info: Info, input: RevokeServiceKeyInput
    ) -> RevokeServiceKeyPayload:
        operator = await info.context.operator()
        key = await keys.revoke_service_key(input.key_id, actor=callers.actor_name(operator))
        return RevokeServiceKeyPayload(key=ServiceKey.of(key))

    @strawberry.mutation(description="Admin. The secret is in the payload, once.")
    @payload_errors(CreateTeamApiKeyPayload)
    async def create_team_api_key(
        self, info: Info, input: CreateTeamApiKeyInput
    ) -> CreateTeamApiKeyPayload:
        viewer = await info.context.viewer()  # a person: keys never make keys
        access = await teams.team_access(viewer, input.team_id, admin=True)
        issued = await keys.create_team_key(
            access.team,
            input.name,
            input.scopes,
            actor=callers.actor_name(viewer),
            expires_at=utc(input.expires_at),
        )
        return CreateTeamApiKeyPayload(api_key=TeamApiKey.of(issued.key), secret=issued.secret)

    @strawberry.mutation(description="Admin. Every server refuses the key within seconds.")
    @payload_errors(RevokeTeamApiKeyPayload)
    async def revoke_team_api_key(
        self, info: Info, input: RevokeTeamApiKeyInput
    ) -> RevokeTeamApiKeyPayload:
        viewer = await info.context.viewer()  # a person: keys never revoke keys
        access = await teams.team_access(viewer, input.team_id, admin=True)
        key = await keys.revoke_team_key(
            access.team, input.key_id, actor=callers.actor_name(viewer)
        )
        return RevokeTeamApiKeyPayload(api_key=TeamApiKey.of(key))


async def service_keys(info: Info) -> list[ServiceKey]:
    """`Query.serviceKeys`: operators only."""
    await info.context.operator()
    return [ServiceKey.of(k) for k in await keys.service_keys()]


async def team_api_keys(
    info: Info, team_id: uuid.UUID, viewer_role: Role | None
) -> list[TeamApiKey]:
    """`Team.apiKeys`: the team's admins (and operators); never a key, whatever its scope."""
    viewer = await info.context.viewer()
    if viewer_role is not Role.ADMIN and not viewer.is_operator:
        raise Forbidden()
    return [TeamApiKey.of(k) for k in await keys.team_keys(team_id)]
