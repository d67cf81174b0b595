"""The /v1 error envelope: `{"error": {"code", "message", "field"}}` with its HTTP status.

`ApiError` is raised anywhere under a /v1 endpoint wrapped by `json_endpoint`, which
answers it; anything unexpected answers 500 INTERNAL in the same envelope, logged with
an id, never a bare stack trace.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import Response

from app.kit.errors import DomainError, ErrorCode

log = structlog.get_logger(__name__)

# The status of each refusal (docs/ingestion.md, "Answers"). PERIOD_CLOSED is a
# conflict with what is stored, like a reused key: retrying never helps.
STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.INVALID_AMOUNT: 400,
    ErrorCode.CREDITS_EXHAUSTED: 402,
    ErrorCode.INVOICED_LIMIT_REACHED: 402,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 409,
    ErrorCode.PERIOD_CLOSED: 409,
    ErrorCode.HOLD_CLOSED: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
}

_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    """A refusal of the whole request: its status and envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers

    @classmethod
    def of(cls, error: DomainError) -> ApiError:
        return cls(STATUS.get(error.code, 400), error.code.value, error.message, error.field)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The envelope, also one event's result in a batch."""
    return {"error": {"code": code, "message": message, "field": field}}


def json_response(
    content: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(_encode(content), status, headers, media_type="application/json")


def error_response(error: ApiError) -> Response:
    body = error_body(error.code, error.message, error.field)
    return json_response(body, error.status, error.headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def json_endpoint(handler: Endpoint) -> Endpoint:
    """Answers an `ApiError` with its envelope, and anything unexpected with 500."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            # The caller's fault (or credits run out): one line, no traceback.
            log.info(
                "http.refused",
                status=error.status,
                code=error.code,
                field=error.field,
                path=request.scope["path"],
            )
            return error_response(error)
        except Exception:  # masked, logged with an id
            error_id = uuid.uuid4().hex[:12]
            log.exception("http.unexpected_error", error_id=error_id, path=request.url.path)
            message = f"Internal error (id {error_id})."
            return error_response(ApiError(500, "INTERNAL", message))

    return run
