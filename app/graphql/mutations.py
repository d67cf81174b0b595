"""Mutations: check permissions, call a service, map domain errors to UserErrors."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import strawberry

from app import metrics
from app.credits import batching
from app.credits import service as credits
from app.graphql import throttle
from app.graphql.audit import actor as audit_actor
from app.graphql.context import Info
from app.graphql.errors import UserError
from app.graphql.scalars import Decimal
from app.graphql.types import CreditGrant, CreditKind, Credits, Member, Role, Team, UsageRecord
from app.kit.errors import DomainError, ErrorCode
from app.kit.ids import parse_uuid
from app.kit.money import parse_field
from app.payments import service as payments
from app.teams import service as teams

P = ParamSpec("P")
R = TypeVar("R")

MAX_BATCH_EVENTS = 1000


def payload_errors(
    payload: type[R],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Turns a DomainError raised by the resolver into `payload(errors=[...])`."""

    def wrap(resolver: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(resolver)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                # Before the resolver: a rate-limited mutation does nothing at all.
                await throttle.check(kwargs.get("info"), kwargs.get("input"))
                return await resolver(*args, **kwargs)
            except DomainError as error:
                return payload(errors=[UserError.of(error)])  # type: ignore[call-arg]

        return run

    return wrap


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@strawberry.type
class CreditsPayloadMixin:
    team_id: strawberry.Private[uuid.UUID | None] = None

    @strawberry.field
    async def credits(self) -> Credits | None:
        if self.team_id is None:
            return None
        return Credits(view=await credits.credits_view(self.team_id))


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
    member: Member | None = None
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
    team_id = parse_uuid(event.team_id)
    if team_id is None:
        return DomainError(ErrorCode.NOT_FOUND, "No such team.", "teamId")
    try:
        amount = parse_field(event.amount, "amount")
    except DomainError as error:
        return error
    return credits.UsageRequest(
        team_id=team_id,
        amount=amount,
        idempotency_key=event.idempotency_key,
        description=event.description,
        occurred_at=_utc(event.occurred_at),
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
        team = await teams.create_team(viewer, input.name)
        return CreateTeamPayload(team=Team(model=team, viewer_role=Role.ADMIN))

    @strawberry.mutation
    @payload_errors(AddTeamMemberPayload)
    async def add_team_member(self, info: Info, input: AddTeamMemberInput) -> AddTeamMemberPayload:
        access = await teams.team_access(await info.context.viewer(), input.team_id, admin=True)
        member = await teams.add_member(
            access.team, input.email, input.role, actor=await audit_actor(info)
        )
        return AddTeamMemberPayload(member=Member.of(member))

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
        access = await teams.team_access(await info.context.viewer(), input.team_id, admin=True)
        limit = parse_field(input.limit, "limit", places=2, allow_zero=True)
        # DESIGN.md rule 2: invoiced billing needs a payment method on file.
        if 0 < limit <= credits.MAX_INVOICED_LIMIT and not await payments.has_payment_method(
            access.team.id
        ):
            raise DomainError(
                ErrorCode.PAYMENT_METHOD_REQUIRED,
                "Add a payment method before raising the invoiced spending limit.",
                "limit",
            )
        await credits.set_invoiced_limit(access.team.id, limit, actor=await audit_actor(info))
        return SetInvoicedSpendingLimitPayload(team_id=access.team.id)

    @strawberry.mutation(description="Operator only: the metering gateway records consumption.")
    @payload_errors(RecordUsagePayload)
    async def record_usage(self, info: Info, input: RecordUsageInput) -> RecordUsagePayload:
        await info.context.operator()
        (result,) = await _record([input])
        team_id = parse_uuid(input.team_id) if result.usage else None
        return RecordUsagePayload(usage=result.usage, errors=result.errors, team_id=team_id)

    @strawberry.mutation(description="Operator only: up to 1,000 usage events across any teams.")
    @payload_errors(RecordUsageBatchPayload)
    async def record_usage_batch(
        self, info: Info, input: RecordUsageBatchInput
    ) -> RecordUsageBatchPayload:
        await info.context.operator()
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
            expires_at=_utc(input.expires_at),
        )
        return GrantCreditsPayload(grant=CreditGrant.of(grant), team_id=team.id)
