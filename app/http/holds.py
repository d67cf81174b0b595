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
from starlette.responses import Response
from starlette.routing import Route

from app.credits import holds
from app.credits.holds import HoldRequest
from app.credits.models import Hold
from app.http.auth import authenticate
from app.http.errors import ApiError, Endpoint, json_endpoint, json_response
from app.http.usage import usage_body
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.ids import parse_uuid
from app.kit.money import format_units, parse_field
from app.kit.text import is_storable

_CREATE_FIELDS = frozenset(
    {"teamId", "amount", "idempotencyKey", "expiresInSeconds", "description", "dimensions"}
)
_CAPTURE_FIELDS = frozenset({"teamId", "amount", "description", "dimensions"})
_RELEASE_FIELDS = frozenset({"teamId"})
MAX_FIELD_NAME = 64  # an unknown field is named in the error only when short and printable


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
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, "The body is a JSON object.")
    for name in body:
        if name not in allowed:
            shown = name if len(name) <= MAX_FIELD_NAME and is_storable(name) else None
            raise ApiError(400, ErrorCode.INVALID_INPUT.value, "Unknown field.", shown)
    return body


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError(400, ErrorCode.INVALID_INPUT.value, f"{name} takes a string.", name)
    return value


def _amount(body: dict[str, Any]) -> int:
    value = body.get("amount")
    if not isinstance(value, str):
        raise ApiError(
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
        raise ApiError(404, ErrorCode.NOT_FOUND.value, "No such team.", "teamId")
    return team_id


def _ttl(body: dict[str, Any]) -> int:
    value = body.get("expiresInSeconds")
    if value is None:
        return holds.DEFAULT_TTL_SECONDS
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
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


# --- the endpoints ---------------------------------------------------------------------------


def _endpoint(handler: Callable[[Request], Awaitable[tuple[int, dict[str, Any]]]]) -> Endpoint:
    """Authenticates (the one /v1 rule), runs `handler`, answers every refusal in the
    /v1 envelope."""

    @json_endpoint
    async def endpoint(request: Request) -> Response:
        await authenticate(request)
        try:
            status, body = await handler(request)
        except DomainError as error:
            raise ApiError.of(error) from None
        except NotFound:
            raise ApiError(404, ErrorCode.NOT_FOUND.value, "Not found.") from None
        return json_response(body, status)

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
        raise ApiError(404, ErrorCode.NOT_FOUND.value, "No such team.", "teamId") from None
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
        raise ApiError(404, ErrorCode.NOT_FOUND.value, "No such hold.") from None
    return 200, {"usage": usage_body(capture.usage), "hold": hold_json(capture.hold)}


async def _release(request: Request) -> tuple[int, dict[str, Any]]:
    body = await _body(request, _RELEASE_FIELDS, optional=True)
    try:
        hold = await holds.release_hold(
            request.path_params["hold_id"], team_id=_team(body, required=False)
        )
    except NotFound:
        raise ApiError(404, ErrorCode.NOT_FOUND.value, "No such hold.") from None
    return 200, {"hold": hold_json(hold)}


ROUTES = [
    Route("/v1/holds", _endpoint(_create), methods=["POST"]),
    Route("/v1/holds/{hold_id}/capture", _endpoint(_capture), methods=["POST"]),
    Route("/v1/holds/{hold_id}/release", _endpoint(_release), methods=["POST"]),
]
