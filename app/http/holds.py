"""`/v1/holds`: reserve money for a request under way, then capture or release it.

Plain JSON for the metering gateway (docs/holds.md): objects carry the GraphQL field
names, money is a decimal string, and every refusal is
`{"error": {"code", "message", "field"}}` with a 4xx status, never a 500.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.billing import callers
from app.config import Settings
from app.credits import holds
from app.credits.holds import HoldRequest
from app.credits.models import Hold
from app.credits.store import UsageRow
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.ids import parse_uuid
from app.kit.money import format_units, parse_field
from app.teams import tokens

_STATUS = {
    ErrorCode.CREDITS_EXHAUSTED: 402,
    ErrorCode.INVOICED_LIMIT_REACHED: 402,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 409,
    ErrorCode.HOLD_CLOSED: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.RATE_LIMITED: 429,
}
_CREATE_FIELDS = frozenset(
    {"teamId", "amount", "idempotencyKey", "expiresInSeconds", "description", "dimensions"}
)
_CAPTURE_FIELDS = frozenset({"teamId", "amount", "description", "dimensions"})
_RELEASE_FIELDS = frozenset({"teamId"})


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: nothing a client sent can make the body unencodable."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode()


class HttpError(Exception):
    """A refusal: its status and the `error` object of the body."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": code, "message": message, "field": field}}

    @classmethod
    def of(cls, error: DomainError) -> HttpError:
        return cls(_STATUS.get(error.code, 400), error.code.value, error.message, error.field)


async def authorize(request: Request) -> None:
    """The /v1 caller must be an operator (the metering gateway's token): 401 without a
    valid bearer token, 403 for anyone else. The one place /v1/holds decides who may call."""
    settings: Settings = request.app.state.settings
    try:
        token = tokens.bearer(request.headers.get("authorization"))
        viewer = await callers.viewer_for_token(settings.jwt_secret(), token)
    except tokens.InvalidToken:
        raise HttpError(401, "UNAUTHENTICATED", "A valid bearer token is required.") from None
    if not viewer.is_operator:
        raise HttpError(403, "FORBIDDEN", "Only the platform's operators may call /v1.")


# --- reading the body ----------------------------------------------------------------------


async def _body(
    request: Request, allowed: frozenset[str], *, optional: bool = False
) -> dict[str, Any]:
    """The JSON object of the body; unknown fields are refused so a typo never passes."""
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # malformed, not UTF-8, nested too deep
        raise HttpError(400, ErrorCode.INVALID_INPUT.value, "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise HttpError(400, ErrorCode.INVALID_INPUT.value, "The body is a JSON object.")
    for name in body:
        if name not in allowed:
            shown = name if holds.DIMENSION_KEY.fullmatch(name) else None
            raise HttpError(400, ErrorCode.INVALID_INPUT.value, "Unknown field.", shown)
    return body


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise HttpError(400, ErrorCode.INVALID_INPUT.value, f"{name} takes a string.", name)
    return value


def _amount(body: dict[str, Any]) -> int:
    value = body.get("amount")
    if not isinstance(value, str):
        raise HttpError(
            400, ErrorCode.INVALID_AMOUNT.value, 'amount is a decimal string such as "1.25".',
            "amount",
        )  # fmt: skip
    return parse_field(value, "amount")


def _team(body: dict[str, Any], *, required: bool) -> uuid.UUID | None:
    raw = _string(body, "teamId", required=required)
    if raw is None:
        return None
    team_id = parse_uuid(raw)
    if team_id is None:  # not an id at all: no such team either
        raise HttpError(404, ErrorCode.NOT_FOUND.value, "No such team.", "teamId")
    return team_id


def _ttl(body: dict[str, Any]) -> int:
    value = body.get("expiresInSeconds")
    if value is None:
        return holds.DEFAULT_TTL_SECONDS
    if isinstance(value, bool) or not isinstance(value, int):
        raise HttpError(
            400, ErrorCode.INVALID_INPUT.value,
            f"expiresInSeconds takes a whole number from 1 to {holds.MAX_TTL_SECONDS}.",
            "expiresInSeconds",
        )  # fmt: skip
    return value


# --- what the answers show -----------------------------------------------------------------


def _time(value: datetime) -> str:
    return value.isoformat()


def hold_json(hold: Hold) -> dict[str, Any]:
    """A hold under its GraphQL field names."""
    return {
        "id": str(hold.id),
        "teamId": str(hold.team_id),
        "amount": format_units(hold.amount),
        "captured": format_units(hold.captured),
        "status": holds.status_of(hold, clock.now()).value,
        "description": hold.description,
        "dimensions": hold.dimensions,
        "expiresAt": _time(hold.expires_at),
        "createdAt": _time(hold.created_at),
        "updatedAt": _time(hold.updated_at),
    }


def usage_json(record: UsageRow) -> dict[str, Any]:
    """A usage record under its GraphQL field names."""
    return {
        "id": str(record.id),
        "idempotencyKey": record.idempotency_key,
        "amount": format_units(record.amount),
        "accepted": True,
        "fromFree": format_units(record.from_free),
        "fromPromotional": format_units(record.from_promotional),
        "fromPrepaid": format_units(record.from_prepaid),
        "invoiced": format_units(record.invoiced),
        "description": record.description,
        "occurredAt": _time(record.occurred_at),
    }


# --- the endpoints ---------------------------------------------------------------------------


def _endpoint(
    handler: Callable[[Request], Awaitable[tuple[int, dict[str, Any]]]],
) -> Callable[[Request], Awaitable[Response]]:
    """Authorizes, runs `handler`, and turns every refusal into its JSON answer."""

    async def endpoint(request: Request) -> Response:
        try:
            await authorize(request)
            status, body = await handler(request)
        except HttpError as error:
            return AsciiJSONResponse(error.body, error.status)
        except DomainError as error:
            failure = HttpError.of(error)
            return AsciiJSONResponse(failure.body, failure.status)
        except NotFound:
            return AsciiJSONResponse(
                {"error": {"code": "NOT_FOUND", "message": "Not found.", "field": None}}, 404
            )
        return AsciiJSONResponse(body, status)

    return endpoint


async def _create(request: Request) -> tuple[int, dict[str, Any]]:
    body = await _body(request, _CREATE_FIELDS)
    team_id = _team(body, required=True)
    assert team_id is not None
    hold_request = HoldRequest(
        team_id=team_id,
        amount=_amount(body),
        idempotency_key=_string(body, "idempotencyKey", required=True) or "",
        expires_in_seconds=_ttl(body),
        description=_string(body, "description"),
        dimensions=holds.check_dimensions(body.get("dimensions")),
    )
    try:
        hold = await holds.create_hold(hold_request)
    except NotFound:
        raise HttpError(404, ErrorCode.NOT_FOUND.value, "No such team.", "teamId") from None
    return 201, {"hold": hold_json(hold)}


async def _capture(request: Request) -> tuple[int, dict[str, Any]]:
    body = await _body(request, _CAPTURE_FIELDS)
    try:
        capture = await holds.capture_hold(
            request.path_params["hold_id"],
            _amount(body),
            team_id=_team(body, required=False),
            description=_string(body, "description"),
            dimensions=holds.check_dimensions(body.get("dimensions")),
        )
    except NotFound:
        raise HttpError(404, ErrorCode.NOT_FOUND.value, "No such hold.") from None
    return 200, {"usage": usage_json(capture.usage), "hold": hold_json(capture.hold)}


async def _release(request: Request) -> tuple[int, dict[str, Any]]:
    body = await _body(request, _RELEASE_FIELDS, optional=True)
    try:
        hold = await holds.release_hold(
            request.path_params["hold_id"], team_id=_team(body, required=False)
        )
    except NotFound:
        raise HttpError(404, ErrorCode.NOT_FOUND.value, "No such hold.") from None
    return 200, {"hold": hold_json(hold)}


ROUTES = [
    Route("/v1/holds", _endpoint(_create), methods=["POST"]),
    Route("/v1/holds/{hold_id}/capture", _endpoint(_capture), methods=["POST"]),
    Route("/v1/holds/{hold_id}/release", _endpoint(_release), methods=["POST"]),
]
