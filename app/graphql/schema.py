"""The GraphQL schema: queries, mutations, subscriptions and the extensions that guard them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import strawberry
from graphql.validation import ASTValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.billing.callers import TeamCaller, TeamKeyCaller
from app.graphql import balances
from app.graphql.consent import InvitationsMutation
from app.graphql.context import Info
from app.graphql.errors import ApiErrors, ApiSchema
from app.graphql.inputs import TextGuard
from app.graphql.invoices import InvoicesMutation
from app.graphql.keys import KeysMutation, ServiceKey, service_keys
from app.graphql.limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, GuardedValidation
from app.graphql.mutations import Mutation
from app.graphql.notifications import (
    NotificationsMutation,
    WebhookDeliveryConnection,
    WebhookEndpointType,
    webhook_deliveries,
    webhook_endpoints,
)
from app.graphql.payments import PaymentsMutation
from app.graphql.programs import BillingAlert, ProgramsMutation, billing_alerts_stream
from app.graphql.scalars import DECIMAL_SCALAR, Decimal
from app.graphql.team import Team, Viewer
from app.graphql.types import Credits
from app.metrics import GraphQLMetrics
from app.teams import service as teams
from app.teams.service import Viewer as SignedInUser


@strawberry.type
class Query:
    @strawberry.field
    async def viewer(self, info: Info) -> Viewer:
        viewer = await info.context.viewer()
        user = viewer.user
        return Viewer(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            name=user.name,
            is_operator=viewer.is_operator,
        )

    @strawberry.field(description="NOT_FOUND when the team does not exist or you may not see it.")
    async def team(self, info: Info, id: strawberry.ID) -> Team | None:
        return Team.of(await teams.team_access(await info.context.team_caller(), id))

    @strawberry.field(description="Operator only: every service key, revoked ones included.")
    async def service_keys(self, info: Info) -> list[ServiceKey]:
        return await service_keys(info)

    @strawberry.field(description="Operator only: the webhook endpoints in use.")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpointType]:
        return await webhook_endpoints(info)

    @strawberry.field(description="Operator only: an endpoint's deliveries, newest first.")
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: strawberry.ID,
        first: int | None = 20,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        return await webhook_deliveries(info, endpoint_id, first, after)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The current state at once, then the latest state after each change."
    )
    async def credits_updated(
        self, info: Info, team_id: strawberry.ID
    ) -> AsyncGenerator[Credits, None]:
        # Checked before the stream starts, so a team the viewer may not see answers with
        # an `error` message; a member removed later gets NOT_FOUND, then `complete`.
        caller = await info.context.team_caller()
        access = await teams.team_access(caller, team_id)
        # A member's access is re-checked while the stream runs (an operator's never ends),
        # a team key's before each message.
        member = caller if isinstance(caller, SignedInUser) and not caller.is_operator else None
        user_id = member.user.id if member is not None else None
        return balances.credits_stream(access.team.id, user_id, _key_recheck(info, caller))

    @strawberry.subscription(description="Each alert as it is raised.")
    async def billing_alerts(
        self, info: Info, team_id: strawberry.ID
    ) -> AsyncGenerator[BillingAlert, None]:
        # Like creditsUpdated: a member removed later gets NOT_FOUND, then `complete`.
        caller = await info.context.team_caller()
        access = await teams.team_access(caller, team_id)
        member = isinstance(caller, SignedInUser) and not caller.is_operator
        user_id = caller.user.id if isinstance(caller, SignedInUser) and member else None
        return billing_alerts_stream(access.team.id, user_id, _key_recheck(info, caller))


def _key_recheck(info: Info, caller: TeamCaller) -> Callable[[], Awaitable[bool]] | None:
    """For a stream opened with a team key: whether the key still holds."""
    return info.context.still_authenticated if isinstance(caller, TeamKeyCaller) else None


# Built once: ValidationCache keys on the rule classes, and the stock limiter extensions
# create new classes per request, which made every request re-validate.
LIMIT_RULES: list[type[ASTValidationRule]] = [
    query_depth_limiter.create_validator(max_depth=MAX_DEPTH, should_ignore=None),
    max_aliases.create_validator(max_alias_count=MAX_ALIASES),
]

schema = ApiSchema(
    query=Query,
    mutation=merge_types(
        "Mutation",
        (
            Mutation,
            PaymentsMutation,
            InvoicesMutation,
            ProgramsMutation,
            KeysMutation,
            InvitationsMutation,
            NotificationsMutation,
        ),
    ),
    subscription=Subscription,
    extensions=[
        ApiErrors,
        GraphQLMetrics,
        lambda: ParserCache(maxsize=1000),
        # Replaces ValidationCache: a cost budget first (fragment bombs), then cached rules.
        GuardedValidation,
        # Right after validation: text the database refuses, in any argument (docs/inputs.md).
        TextGuard,
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ],
    config=StrawberryConfig(scalar_map={Decimal: DECIMAL_SCALAR}),
    # A balance change is rendered once for all its subscribers (app/graphql/balances.py).
    execution_context_class=balances.SharedRenders,
)
