"""HTTP guards in front of every route: request ids, body size, content type, CORS.

`RequestGuard` is plain ASGI (no per-request objects beyond a closure or two), because
the usage hot path serves thousands of requests a second through it:

- every request gets an id (the client's `X-Request-ID` when it is a sane token, else a
  new one), bound to structlog's context for everything logged while serving it, and
  echoed in the `X-Request-ID` response header;
- headers over `MAX_HEADER_BYTES` together (an 8 MB Authorization header, say) are
  refused with 431 before anything reads them: uvicorn's httptools parser sets no limit;
  a websocket handshake with such headers is closed before it is accepted (403);
- a body over `max_request_bytes` is refused with 413 before any of it is parsed, by
  `Content-Length` or, for a chunked body, as soon as the bytes read pass the cap;
- a POST to `/graphql` must be `application/json` (415 otherwise): a cross-site HTML form
  can only send form or text/plain bodies, so it can never run a mutation, and a browser
  sends JSON cross-site only after a CORS preflight that the allow-list decides;
- every HTTP response says how browsers may use it: `Content-Security-Policy:
  frame-ancestors` (this origin and CORS_ALLOW_ORIGINS only, so no other site can frame
  the console and trick clicks), `X-Content-Type-Options: nosniff` and
  `Referrer-Policy: no-referrer` (signed PDF links never leak through a Referer);
- responses are counted by route and status for `/metrics`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.config import Settings
from app.metrics import child, http_responses

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GRAPHQL_PATH = "/graphql"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_ROUTES = frozenset(
    {GRAPHQL_PATH, "/healthz", "/metrics", "/webhooks/stripe", "/v1/usage", "/v1/usage/batch"}
)
# Every header name and value together; a bearer token from an identity provider is a few
# KiB, browsers send under 8 KiB. nginx's default buffers hold 32 KiB.
MAX_HEADER_BYTES = 32 * 1024


class BodyTooLarge(Exception):
    """The request body passed the cap while being read."""


def _problem(status: int, code: str, message: str, request_id: str) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ],
    }
    return start, body


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    mime = content_type.split(b";", 1)[0].strip().lower()
    return mime == b"application/json"


def security_headers(frame_origins: list[str]) -> list[tuple[bytes, bytes]]:
    """The browser policy headers every response carries (see the module doc)."""
    # Only well-formed origins reach the header: a stray ';' must not add a directive.
    origins = [o for o in frame_origins if re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+", o)]
    ancestors = " ".join(["'self'", *origins])
    return [
        (b"content-security-policy", f"frame-ancestors {ancestors}".encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


class RequestGuard:
    """Request id, body cap, JSON-only GraphQL POSTs, response counts (see module doc)."""

    def __init__(
        self, app: ASGIApp, *, max_body: int, frame_origins: list[str] | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.headers = security_headers(frame_origins or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id: str | None = None
        content_type: bytes | None = None
        content_length: bytes | None = None
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"x-request-id":
                if _REQUEST_ID.match(value):
                    request_id = value.decode()
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        if request_id is None:
            request_id = os.urandom(16).hex()  # 32 hex digits, like a uuid4, faster
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if header_bytes > MAX_HEADER_BYTES:
                await self._headers_too_large(scope, receive, send, request_id)
            elif kind == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, request_id, content_type, content_length)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        content_type: bytes | None,
        content_length: bytes | None,
    ) -> None:
        path = scope["path"]
        route = path if path in _ROUTES else "other"
        if scope["method"] == "POST" and path == GRAPHQL_PATH and not _is_json(content_type):
            await self._refuse(
                send, route, 415, "UNSUPPORTED_MEDIA_TYPE",
                "POST /graphql takes Content-Type: application/json.", request_id,
            )  # fmt: skip
            return
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > self.max_body:
                status, code = (413, "PAYLOAD_TOO_LARGE") if declared >= 0 else (400, "BAD_REQUEST")
                await self._refuse(
                    send, route, status, code,
                    f"The request body takes at most {self.max_body} bytes.", request_id,
                )  # fmt: skip
                return
        status = 500
        started = False
        received = 0
        extra = [(b"x-request-id", request_id.encode()), *self.headers]

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, counted_receive, tagged_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(
                send, route, 413, "PAYLOAD_TOO_LARGE",
                f"The request body takes at most {self.max_body} bytes.", request_id,
            )  # fmt: skip
            return
        finally:
            if started:
                child(http_responses, route, str(status)).inc()

    async def _headers_too_large(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        if scope["type"] == "websocket":
            # Closed before `websocket.accept`: the server answers the handshake with 403.
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008})
            return
        path = scope["path"]
        await self._refuse(
            send, path if path in _ROUTES else "other", 431, "REQUEST_HEADER_FIELDS_TOO_LARGE",
            f"The request headers take at most {MAX_HEADER_BYTES} bytes together.", request_id,
        )  # fmt: skip

    async def _refuse(
        self, send: Send, route: str, status: int, code: str, message: str, request_id: str
    ) -> None:
        start, body = _problem(status, code, message, request_id)
        start["headers"] = [*start["headers"], *self.headers]
        await send(start)
        await send({"type": "http.response.body", "body": body})
        child(http_responses, route, str(status)).inc()


def middleware(settings: Settings) -> list[Middleware]:
    """The app's middleware, outermost first: CORS, so refusals carry CORS headers too."""
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            # Bearer tokens, not cookies: a cross-site page never rides on a session.
            allow_credentials=False,
            max_age=600,
        ),
        Middleware(
            RequestGuard,
            max_body=settings.max_request_bytes,
            frame_origins=settings.cors_allow_origins,
        ),
    ]
