"""Per-request context: settings, the bearer token, and the viewer resolved once."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from app.config import Settings
from app.credits import service as credits
from app.kit.errors import Forbidden, Unauthenticated
from app.kit.ratelimit import RateLimiter
from app.teams import service as teams
from app.teams import tokens
from app.teams.service import Viewer

# Verified tokens and their signed-in viewers, so a busy client (the metering gateway)
# pays for JWT verification and the user lookup once per token, not per request.
_VIEWER_CACHE_SIZE = 10_000
_viewers: OrderedDict[str, tuple[Viewer, float]] = OrderedDict()


async def _viewer_for(secret: str, token: str) -> Viewer:
    cached = _viewers.get(token)
    if cached is not None and cached[1] > time.time():
        return cached[0]
    claims = tokens.verify(secret, token)
    viewer = await teams.sign_in(claims, open_team=credits.open_account)
    _viewers[token] = (viewer, claims.expires_at)
    if len(_viewers) > _VIEWER_CACHE_SIZE:
        _viewers.popitem(last=False)
    return viewer


def forget_viewers() -> None:
    """Drops the cached viewers (tests that empty the users table)."""
    _viewers.clear()


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
                self._viewer = await _viewer_for(self.settings.jwt_secret(), token)
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
