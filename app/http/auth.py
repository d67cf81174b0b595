"""Who may call the /v1 endpoints (usage ingestion, holds): an operator's token or a
service key with `usage:write` (docs/keys.md)."""

from __future__ import annotations

from starlette.requests import Request

from app.billing import callers
from app.billing.callers import ServiceKeyCaller, Viewer
from app.config import Settings
from app.http.errors import ApiError
from app.kit.errors import Forbidden, Unauthenticated
from app.teams import tokens


async def authenticate(request: Request) -> Viewer | ServiceKeyCaller:
    """The caller of a /v1 endpoint, from `Authorization: Bearer <token or key>`. Raises
    `ApiError`: 401 without valid credentials, 403 for a caller that may not record
    usage. Runs before the body is read, so nothing is spent on strangers."""
    settings: Settings = request.app.state.settings
    try:
        return await callers.usage_writer(
            tokens.verifier(settings), request.headers.get("authorization")
        )
    except Unauthenticated:
        raise ApiError(
            401,
            "UNAUTHENTICATED",
            "Authentication required: send a valid bearer token or API key.",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    except Forbidden:
        raise ApiError(
            403,
            "FORBIDDEN",
            "Recording usage needs an operator token or a usage:write service key.",
        ) from None
