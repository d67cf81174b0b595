"""Mutations: check permissions, call a service, map domain errors to UserErrors."""

from __future__ import annotations

from datetime import datetime
from typing import ParamSpec, TypeVar

import strawberry
from strawberry.scalars import JSON

from app import metrics
from app.billing import limits
from app.credits import batching
from app.credits import service as credits
from app.graphql.audit import actor as audit_actor
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.invitations import Invitation
from app.graphql.payloads import CreditsPayloadMixin, payload_errors, utc
from app.graphql.scalars import Decimal
from app.graphql.team import Team
from app.graphql.types import CreditGrant, CreditKind, Member, Role, UsageRecord
from app.kit.errors import DomainError, ErrorCode
from app.kit.ids import parse_uuid
from app.kit.money import parse_field
from app.teams import invitations
from app.teams import service as teams

P = ParamSpec("P")
R = TypeVar("R")

MAX_BATCH_EVENTS = 1000


# --- teams -----------------------------------------------------------------------------------


@strawberry.input
class CreateTeamInput:
    name: str


@strawberry.type
class CreateTeamPayload:
    team: Team | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AddTeamMemberInput:
    team_id: strawberry.ID
    email: str
    role: Role = Role.MEMBER


@strawberry.type
class AddTeamMemberPayload:
    member: Member | None = strawberry.field(
        default=None, description="pending until the invited person accepts"
    )
    invitation: Invitation | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RemoveTeamMemberInput:
    team_id: strawberry.ID
    email: str


@strawberry.type
class RemoveTeamMemberPayload:
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetTeamMemberRoleInput:
    team_id: strawberry.ID
    email: str
    role: Role


@strawberry.type
class SetTeamMemberRolePayload:
    member: Member | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


# --- credits -----------------------------------------------------------------------------------


@strawberry.input
class SetInvoicedSpendingLimitInput:
    team_id: strawberry.ID
    limit: Decimal


@strawberry.type
class SetInvoicedSpendingLimitPayload(CreditsPayloadMixin):
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RecordUsageInput:
    team_id: strawberry.ID
    amount: Decimal
    idempotency_key: str
    description: str | None = None
    occurred_at: datetime | None = strawberry.field(default=None, description="defaults to now")
    dimensions: JSON | None = strawberry.field(
        default=None,
        description="up to 10 keys of 1-64 characters of A-Z a-z 0-9 _ . - to strings of at most "
        '256 characters, e.g. {"model": "grok-4"}',
    )


@strawberry.type
class RecordUsagePayload(CreditsPayloadMixin):
    usage: UsageRecord | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RecordUsageResult:
    usage: UsageRecord | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RecordUsageBatchInput:
    events: list[RecordUsageInput] = strawberry.field(description="up to 1,000 events, any teams")


@strawberry.type
class RecordUsageBatchPayload:
    results: list[RecordUsageResult] = strawberry.field(
        default_factory=list, description="one per event, in input order"
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(
    description="kind PREPAID records a payment taken outside Stripe "
    "(a wire an operator reconciled)."
)
class GrantCreditsInput:
    team_id: strawberry.ID
    amount: Decimal
    kind: CreditKind = CreditKind.FREE
    description: str | None = None
    expires_at: datetime | None = None


@strawberry.type
class GrantCreditsPayload(CreditsPayloadMixin):
    grant: CreditGrant | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _usage_request(event: RecordUsageInput) -> credits.UsageRequest | DomainError:
    return credits.usage_request(
        event.team_id,
        event.amount,
        event.idempotency_key,
        description=event.description,
        occurred_at=event.occurred_at,
        dimensions_value=event.dimensions,
    )


async def _record(events: list[RecordUsageInput]) -> list[RecordUsageResult]:
    parsed = [_usage_request(e) for e in events]
    requests = [p for p in parsed if isinstance(p, credits.UsageRequest)]
    if len(requests) == 1:
        # A single event joins the worker's group commit with concurrent ones.
        outcomes = iter([await batching.submit(requests[0])])
    else:
        outcomes = iter(await credits.record_usage(requests))
    results: list[RecordUsageResult] = []
    for item in parsed:
        if isinstance(item, DomainError):
            results.append(RecordUsageResult(errors=[UserError.of(item)]))
            continue
        outcome = next(outcomes)
        if outcome.not_found:
            error = DomainError(ErrorCode.NOT_FOUND, "No such team.", "teamId")
            results.append(RecordUsageResult(errors=[UserError.of(error)]))
        elif outcome.error is not None:
            results.append(RecordUsageResult(errors=[UserError.of(outcome.error)]))
        else:
            assert outcome.record is not None
            results.append(RecordUsageResult(usage=UsageRecord.of(outcome.record)))
    # Counted after the transaction, from the results: a few dict updates per call.
    metrics.count_usage(r.errors[0].code.value if r.errors else None for r in results)
    return results


@strawberry.type
class Mutation:
    @strawberry.mutation
    @payload_errors(CreateTeamPayload)
    async def create_team(self, info: Info, input: CreateTeamInput) -> CreateTeamPayload:
        viewer = await info.context.viewer()
        team = await teams.create_team(viewer, input.name, open_team=credits.open_account)
        return CreateTeamPayload(team=Team(model=team, viewer_role=Role.ADMIN))

    @strawberry.mutation(
        description="Admin: invites the email; its owner becomes a member only by accepting."
    )
    @payload_errors(AddTeamMemberPayload)
    async def add_team_member(self, info: Info, input: AddTeamMemberInput) -> AddTeamMemberPayload:
        viewer = await info.context.viewer()
        access = await teams.team_access(viewer, input.team_id, admin=True)
        actor = await audit_actor(info)
        invited = await invitations.invite(
            access.team, input.email, input.role, invited_by=viewer.user.email, actor=actor
        )
        member = teams.MemberView(invited.email, None, invited.role, True)
        return AddTeamMemberPayload(member=Member.of(member), invitation=Invitation.of(invited))

    @strawberry.mutation
    @payload_errors(RemoveTeamMemberPayload)
    async def remove_team_member(
        self, info: Info, input: RemoveTeamMemberInput
    ) -> RemoveTeamMemberPayload:
        access = await teams.team_access(await info.context.viewer(), input.team_id, admin=True)
        await teams.remove_member(access.team, input.email, actor=await audit_actor(info))
        return RemoveTeamMemberPayload()

    @strawberry.mutation
    @payload_errors(SetTeamMemberRolePayload)
    async def set_team_member_role(
        self, info: Info, input: SetTeamMemberRoleInput
    ) -> SetTeamMemberRolePayload:
        access = await teams.team_access(await info.context.viewer(), input.team_id, admin=True)
        member = await teams.set_member_role(
            access.team, input.email, input.role, actor=await audit_actor(info)
        )
        return SetTeamMemberRolePayload(member=Member.of(member))

    @strawberry.mutation
    @payload_errors(SetInvoicedSpendingLimitPayload)
    async def set_invoiced_spending_limit(
        self, info: Info, input: SetInvoicedSpendingLimitInput
    ) -> SetInvoicedSpendingLimitPayload:
        caller = await info.context.team_caller()
        access = await teams.team_access(caller, input.team_id, admin=True)
        limit = parse_field(input.limit, "limit", places=2, allow_zero=True)
        await limits.set_invoiced_limit(access.team.id, limit, actor=await audit_actor(info))
        return SetInvoicedSpendingLimitPayload(team_id=access.team.id)

    @strawberry.mutation(
        description="Operator or usage:write service key: the metering gateway records consumption."
    )
    @payload_errors(RecordUsagePayload)
    async def record_usage(self, info: Info, input: RecordUsageInput) -> RecordUsagePayload:
        await info.context.usage_writer()
        (result,) = await _record([input])
        team_id = parse_uuid(input.team_id) if result.usage else None
        return RecordUsagePayload(usage=result.usage, errors=result.errors, team_id=team_id)

    @strawberry.mutation(
        description="Operator or usage:write service key: up to 1,000 usage events across "
        "any teams."
    )
    @payload_errors(RecordUsageBatchPayload, per_item_text=True)
    async def record_usage_batch(
        self, info: Info, input: RecordUsageBatchInput
    ) -> RecordUsageBatchPayload:
        await info.context.usage_writer()
        if len(input.events) > MAX_BATCH_EVENTS:
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"At most {MAX_BATCH_EVENTS} events per call.", "events"
            )
        return RecordUsageBatchPayload(results=await _record(input.events))

    @strawberry.mutation(description="Operator only.")
    @payload_errors(GrantCreditsPayload)
    async def grant_credits(self, info: Info, input: GrantCreditsInput) -> GrantCreditsPayload:
        await info.context.operator()
        team = await teams.require_team(input.team_id)
        amount = parse_field(input.amount, "amount")
        grant = await credits.grant_credits(
            team.id,
            input.kind,
            amount,
            description=input.description,
            expires_at=utc(input.expires_at),
        )
        return GrantCreditsPayload(grant=CreditGrant.of(grant), team_id=team.id)
