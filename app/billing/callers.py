"""Who is calling: a bearer token resolved to its signed-in viewer, for every interface.

Verified tokens and their viewers are cached, so a busy client (the metering gateway)
pays for JWT verification and the user lookup once per token, not per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from app.credits import service as credits
from app.teams import service as teams
from app.teams import tokens
from app.teams.service import Viewer

_VIEWER_CACHE_SIZE = 10_000
_viewers: OrderedDict[str, tuple[Viewer, float]] = OrderedDict()


async def viewer_for_token(secret: str, token: str) -> Viewer:
    """The viewer a bearer token signs in; raises `tokens.InvalidToken`."""
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
