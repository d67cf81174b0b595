"""Per-request context: settings, the bearer token, and the viewer resolved once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from app.billing import callers
from app.config import Settings
from app.kit.errors import Forbidden, Unauthenticated
from app.kit.ratelimit import RateLimiter
from app.teams import tokens
from app.teams.service import Viewer


@dataclass
class Context:
    settings: Settings
    request: Request | WebSocket | None
    authorization: str | None
    response: Any = None
    connection_params: Any = None
    # The app's mutation buckets (app/graphql/throttle.py); None: no rate limits.
    rate_limiter: RateLimiter | None = None
    _viewer: Viewer | None = field(default=None, init=False)

    async def viewer(self) -> Viewer:
        """The signed-in user; raises Unauthenticated without a valid token."""
        if self._viewer is None:
            try:
                token = tokens.bearer(self._authorization())
                self._viewer = await callers.viewer_for_token(self.settings.jwt_secret(), token)
            except tokens.InvalidToken:
                raise Unauthenticated() from None
        return self._viewer

    def _authorization(self) -> str | None:
        # Websocket clients send the header value in the connection_init payload.
        if isinstance(self.connection_params, dict):
            value = self.connection_params.get("Authorization") or self.connection_params.get(
                "authorization"
            )
            return value if isinstance(value, str) else None
        return self.authorization

    async def operator(self) -> Viewer:
        viewer = await self.viewer()
        if not viewer.is_operator:
            raise Forbidden()
        return viewer


Info = StrawberryInfo[Context, None]
