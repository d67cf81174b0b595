"""The Starlette endpoint serving GraphQL over HTTP and websockets."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import suppress
from datetime import timedelta

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from app import console
from app.config import Environment, Settings
from app.graphql import balances
from app.graphql.context import Context
from app.graphql.errors import ApiErrors
from app.graphql.negotiation import GRAPHQL_RESPONSE_JSON, JSON, negotiate, status_for
from app.graphql.schema import schema
from app.kit.errors import Unauthenticated
from app.kit.ratelimit import Limiter, limiter_for
from app.teams import tokens

GET_OPERATIONS = frozenset({OperationType.QUERY})
POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
# The code in a refusal's `extensions`, by status.
REFUSAL_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
MASK = ApiErrors()


def _has_code(error: GraphQLError) -> bool:
    return bool(error.extensions and "code" in error.extensions)


_OPTIONAL_OBJECT = (dict, type(None))


def malformed(message: object) -> str | None:
    """Why a graphql-transport-ws message is not one the protocol defines, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message is a JSON object with a string `type`."
    kind, payload = message["type"], message.get("payload")
    if kind in ("subscribe", "complete") and not (
        isinstance(message.get("id"), str) and message["id"]
    ):
        return f"A `{kind}` message needs a string `id`."
    if kind != "subscribe":
        return (
            None
            if isinstance(payload, _OPTIONAL_OBJECT) or kind == "complete"
            else ("`payload` must be an object.")
        )
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "A `subscribe` payload is an object with a string `query`."
    if not isinstance(payload.get("variables"), _OPTIONAL_OBJECT) or not isinstance(
        payload.get("extensions"), _OPTIONAL_OBJECT
    ):
        return "`variables` and `extensions` must be objects."
    if not isinstance(payload.get("operationName"), str | None):
        return "`operationName` must be a string."
    return None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws, with commit times on balance messages.

    `extensions.committedAt` (Unix seconds) is the commit of the newest change a balance
    reflects; `extensions.pendingSince` the oldest change this subscriber sees for the
    first time in it (changes coalesce), so a client can measure commit-to-screen
    latency. The first state of a subscription has neither.
    """

    # Access ends with the token: at `exp` the socket closes (4403), and a subscribe that
    # races the timer is refused the same way, so no stream outlives its credentials.
    _expires_at: float | None = None
    _expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._expiry is None:
            self._expires_at = token_expiry(self.context)
            if self._expires_at is not None:
                self._expiry = asyncio.create_task(self._close_at_expiry(self._expires_at))

    async def _close_at_expiry(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.websocket.close(code=4403, reason="Token expired")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self._expires_at is not None and time.time() >= self._expires_at:
            await self.websocket.close(code=4403, reason="Token expired")
            return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with suppress(asyncio.CancelledError):
                await self._expiry
        await super().shutdown()

    async def handle_message(self, message: Message) -> None:
        # Strawberry trusts the shape: a JSON array, a numeric id or a payload that is not
        # an object raised inside the handler (a 1006 close, or a subscribe task that died
        # and left the socket hanging). Anything off is the protocol's 4400.
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # The operation's own task: its balance stream may send on it directly.
        balances.current_operation.set(operation)
        await super().run_operation(operation)

    async def send_message(self, message: Message) -> None:
        await super().send_message(balances.stamp(message))


def token_expiry(context: Context) -> float | None:
    """When the websocket's bearer token expires (Unix seconds); None if it is no JWT.
    Called once the connection's caller was verified, so the token is read unverified
    (an identity provider's token is checked against its JWKS, which is async)."""
    try:
        token = tokens.bearer(context._authorization())
    except tokens.InvalidToken:
        return None
    return tokens.unverified_expiry(token)


class GraphQLView(GraphQL[Context, None]):
    """GraphQL over HTTP (GET queries, POST queries and mutations) and websockets.

    The response is `application/graphql-response+json` or `application/json`, as the
    Accept header asks (neither: 406); every refusal, whatever its status, is a JSON
    body with `errors[].extensions.code`, never plain text.
    """

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, settings: Settings, rate_limiter: Limiter | None = None) -> None:
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
        # Shared with the /v1 endpoints (app.main): in Redis when the broker is.
        self.rate_limiter = rate_limiter or limiter_for(
            settings.broker_url, prefix=settings.rate_limit_redis_prefix
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        media_type = negotiate(request.headers.get("accept"))
        try:
            if media_type is None and not self.should_render_graphql_ide(
                self.request_adapter_class(request)
            ):
                raise HTTPException(
                    406, f"Accept {GRAPHQL_RESPONSE_JSON} or {JSON} (or send no Accept header)."
                )
            response = await self.run(request)
        except HTTPException as error:
            response = self._refusal(error, media_type or JSON)
        await response(scope, receive, send)

    def _refusal(self, error: HTTPException, media_type: str) -> Response:
        """A request refused before execution: its status, a GraphQL error body."""
        code = REFUSAL_CODES.get(error.status_code, "BAD_REQUEST")
        body = {"errors": [{"message": error.reason, "extensions": {"code": code}}]}
        headers = {"Allow": "POST"} if error.status_code == 405 else None
        return Response(
            self.encode_json(body), error.status_code, headers=headers, media_type=media_type
        )

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST":
            body = await request.get_body()
            # An object or array starts with { or [ (else the JSON is a scalar, or
            # invalid): only then is it parsed here first, to refuse it with a reason.
            if body.lstrip()[:1] not in (b"{", b"[") and not isinstance(
                self.parse_json(body), dict | list
            ):
                raise HTTPException(
                    400,
                    'The request body must be a JSON object: {"query": ..., "variables": ...}.',
                )
        data = await super().parse_http_body(request)
        for one in data if isinstance(data, list) else (data,):
            if not isinstance(one.operation_name, str | None):
                raise HTTPException(
                    400,
                    "The GraphQL operation's `operationName` must be a string or null.",
                )
        return data

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Subscriptions run over the websocket only; GET never runs a mutation.
        method = request_adapter.method
        allowed = GET_OPERATIONS if method == "GET" else POST_OPERATIONS
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            reason = error.as_http_error_reason(method)
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(
                    400, f"{reason}: subscribe over a websocket (graphql-transport-ws) at /graphql"
                ) from error
            raise HTTPException(405, f"{reason}: send them with POST") from error
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request.") from error

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors and not all(_has_code(e) for e in result.errors):
            # Errors raised before execution (a syntax error, a failing extension) miss
            # the masking extension: coded here, so none leaks a message or lacks a code.
            result.errors = [e if _has_code(e) else MASK.anonymise_error(e) for e in result.errors]
        return await super().process_result(request, result)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        # Read back by create_response, which is not given the request.
        sub_response.media_type = negotiate(request.headers.get("accept")) or JSON
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media_type = sub_response.media_type or JSON
        status = 200
        if isinstance(response_data, dict):
            status = status_for(response_data, media_type)
        response = Response(self.encode_json(response_data), status, media_type=media_type)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    def decode_json(self, data: str | bytes) -> object:
        # HTTP bodies and websocket messages both: JSON nested past the interpreter's
        # recursion limit reads as invalid JSON (400; 4400 on a socket), not a 500.
        try:
            return super().decode_json(data)
        except RecursionError:
            raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None

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
            await context.caller()
        except Unauthenticated:
            raise ConnectionRejectionError() from None
        return await super().on_ws_connect(context)
