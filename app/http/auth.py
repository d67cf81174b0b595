"""Who may call the /v1 endpoints (usage ingestion, holds)."""

from __future__ import annotations

from starlette.requests import Request

from app.billing import callers
from app.config import Settings
from app.http.errors import ApiError
from app.teams import tokens
from app.teams.service import Viewer


async def authenticate(request: Request) -> Viewer:
    """The caller of a /v1 endpoint, from `Authorization: Bearer <token>`: today an
    operator's JWT. Raises `ApiError`: 401 without a valid token, 403 for a caller that
    may not record usage. Runs before the body is read, so nothing is spent on strangers."""
    settings: Settings = request.app.state.settings
    try:
        token = tokens.bearer(request.headers.get("authorization"))
        viewer = await callers.viewer_for_token(settings.jwt_secret(), token)
    except tokens.InvalidToken:
        raise ApiError(
            401,
            "UNAUTHENTICATED",
            "Authentication required: send a valid bearer token.",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    if not viewer.is_operator:
        raise ApiError(403, "FORBIDDEN", "Only the platform's operators may record usage.")
    return viewer
