"""The Starlette endpoint serving GraphQL over HTTP and websockets."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message
from strawberry.types.unset import UnsetType

from app import console
from app.config import Environment, Settings
from app.graphql import balances
from app.graphql.context import Context
from app.graphql.schema import schema
from app.kit.errors import Unauthenticated
from app.kit.ratelimit import RateLimiter


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with commit times on balance messages.

    `extensions.committedAt` (Unix seconds) is the commit of the newest change a balance
    reflects; `extensions.pendingSince` the oldest change this subscriber sees for the
    first time in it (changes coalesce), so a client can measure commit-to-screen
    latency. The first state of a subscription has neither.
    """

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # The operation's own task: its balance stream may send on it directly.
        balances.current_operation.set(operation)
        await super().run_operation(operation)

    async def send_message(self, message: Message) -> None:
        await super().send_message(balances.stamp(message))


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            schema,
            # No IDE in production (GET /graphql without a query answers 404 there).
            graphql_ide=None if settings.environment is Environment.PRODUCTION else "graphiql",
            # Only graphql-transport-ws: a legacy `graphql-ws` client is closed with 4406.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            # Browsers on other origins may open a websocket only when listed here.
            allowed_origins=settings.cors_allow_origins,
        )
        self.settings = settings
        self.rate_limiter = RateLimiter()

    def encode_json(self, data: object) -> str | bytes:
        # Balance messages come assembled from parts their subscribers share.
        if isinstance(data, balances.Encoded):
            return data.text
        return super().encode_json(data)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL built from npm packages into app/static/console/ (no CDN)."""
        return console.ide_response()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            settings=self.settings,
            request=request,
            authorization=request.headers.get("authorization"),
            response=response,
            rate_limiter=self.rate_limiter,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        # The token comes in the connection_init payload; missing or bad closes with 4403.
        try:
            await context.viewer()
        except Unauthenticated:
            raise ConnectionRejectionError() from None
        return await super().on_ws_connect(context)
