"""Per-request context: settings, the bearer credential, and the caller resolved once.

Which callers a resolver admits is said by the method it asks (app/billing/callers.py):
`viewer()` a signed-in user, `operator()` platform staff, `team_caller()` a user or a
team API key (then `teams.team_access` keeps the key to its own team),
`usage_writer()` an operator or a `usage:write` service key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from app.billing import callers
from app.billing.callers import Caller, ServiceKeyCaller, TeamCaller, Viewer
from app.config import Settings
from app.kit.errors import Forbidden, Unauthenticated
from app.kit.ratelimit import Limiter
from app.teams import tokens


@dataclass
class Context:
    settings: Settings
    request: Request | WebSocket | None
    authorization: str | None
    response: Any = None
    connection_params: Any = None
    # The app's mutation buckets (app/graphql/throttle.py); None: no rate limits.
    rate_limiter: Limiter | None = None
    _caller: Caller | None = field(default=None, init=False)

    async def caller(self) -> Caller:
        """Whoever the credential names; raises Unauthenticated without a valid one."""
        if self._caller is None:
            self._caller = await callers.resolve(
                tokens.verifier(self.settings), self._authorization()
            )
        return self._caller

    async def viewer(self) -> Viewer:
        """The signed-in user; Unauthenticated without a credential, Forbidden for a key."""
        return callers.person(await self.caller())

    async def team_caller(self) -> TeamCaller:
        """A user or a team API key, for `teams.team_access`; Forbidden for a service key."""
        return callers.team_caller(await self.caller())

    async def usage_writer(self) -> Viewer | ServiceKeyCaller:
        """An operator or a service key with `usage:write`; Forbidden for anyone else."""
        return callers.require_usage_writer(await self.caller())

    async def still_authenticated(self) -> bool:
        """Whether the credential still holds, asked afresh (not the request's copy): a long
        subscription opened with an API key ends once the key is revoked or expires."""
        try:
            await callers.resolve(tokens.verifier(self.settings), self._authorization())
        except Unauthenticated:
            return False
        return True

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
