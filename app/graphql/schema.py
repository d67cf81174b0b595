"""The GraphQL schema: queries, mutations, subscriptions and the extensions that guard them."""

from __future__ import annotations

from collections.abc import AsyncGenerator

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

from app.graphql import balances
from app.graphql.context import Info
from app.graphql.errors import ApiErrors
from app.graphql.inputs import TextGuard
from app.graphql.invoices import InvoicesMutation
from app.graphql.limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, GuardedValidation
from app.graphql.mutations import Mutation
from app.graphql.payments import PaymentsMutation
from app.graphql.programs import BillingAlert, ProgramsMutation, billing_alerts_stream
from app.graphql.scalars import DECIMAL_SCALAR, Decimal
from app.graphql.team import Team, Viewer
from app.graphql.types import Credits
from app.metrics import GraphQLMetrics
from app.teams import service as teams


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
        return Team.of(await teams.team_access(await info.context.viewer(), id))


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
        viewer = await info.context.viewer()
        access = await teams.team_access(viewer, team_id)
        user_id = None if viewer.is_operator else viewer.user.id
        return balances.credits_stream(access.team.id, user_id)

    @strawberry.subscription(description="Each alert as it is raised.")
    async def billing_alerts(
        self, info: Info, team_id: strawberry.ID
    ) -> AsyncGenerator[BillingAlert, None]:
        access = await teams.team_access(await info.context.viewer(), team_id)
        return billing_alerts_stream(access.team.id)


# Built once: ValidationCache keys on the rule classes, and the stock limiter extensions
# create new classes per request, which made every request re-validate (about 10 ms).
LIMIT_RULES: list[type[ASTValidationRule]] = [
    query_depth_limiter.create_validator(max_depth=MAX_DEPTH, should_ignore=None),
    max_aliases.create_validator(max_alias_count=MAX_ALIASES),
]

schema = strawberry.Schema(
    query=Query,
    mutation=merge_types(
        "Mutation", (Mutation, PaymentsMutation, InvoicesMutation, ProgramsMutation)
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
