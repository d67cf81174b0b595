"""The Starlette endpoint serving GraphQL over HTTP and websockets."""

from __future__ import annotations

import json
from datetime import timedelta

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send
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
from app.graphql import balances, fastpath
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
        self.plans = fastpath.PlanCache(schema._schema) if settings.graphql_fast_path else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.plans is None:
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            # The body read here stays cached on the request for Strawberry's fallback.
            if await self._run_compiled(request, self.plans, send):
                return
            response = await self.run(request)
        except HTTPException as error:
            response = PlainTextResponse(error.reason, status_code=error.status_code)
        await response(scope, receive, send)

    async def _run_compiled(self, request: Request, plans: fastpath.PlanCache, send: Send) -> bool:
        """Answers from a compiled plan (app/graphql/fastpath.py); False, having sent
        nothing, when Strawberry must answer: streaming, extensions, no plan."""
        accept = request.headers.get("accept", "")
        if "multipart" in accept or "event-stream" in accept:
            return False
        try:
            data = json.loads(await request.body())
        except ValueError:
            return False
        if not isinstance(data, dict) or data.get("extensions") is not None:
            return False
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict | None):
            return False
        if not isinstance(name, str | None):
            return False
        plan = plans.get(query, name)
        if plan is None:
            return False
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        body = await fastpath.execute(plan, schema._schema, context, variables)
        if body is None:
            return False
        if sub_response.status_code or sub_response.headers.raw or sub_response.background:
            # A resolver set a status or headers: Strawberry's response merges them.
            await self.create_response(body, sub_response)(request.scope, request.receive, send)
            return True
        # What create_response sends otherwise, without building a Response.
        content = self.encode_json(body)
        encoded = content.encode() if isinstance(content, str) else content
        headers = [
            (b"content-length", str(len(encoded)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})
        return True

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
