"""The Starlette endpoint serving GraphQL over HTTP and websockets."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from app import console
from app.config import Settings
from app.graphql.context import Context
from app.graphql.schema import schema
from app.kit.errors import Unauthenticated


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=20,
            allowed_origins=settings.cors_allow_origins,
        )
        self.settings = settings

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
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        try:
            await context.viewer()
        except Unauthenticated:
            raise ConnectionRejectionError() from None
        return await super().on_ws_connect(context)
