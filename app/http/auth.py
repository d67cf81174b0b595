"""Who may call the /v1 endpoints (usage ingestion, holds): an operator's token or a
service key with `usage:write` (docs/keys.md); and how often (each caller's requests a
minute, `RATE_LIMIT_OPERATOR_PER_MINUTE`, the same bucket its GraphQL mutations use)."""

from __future__ import annotations

from starlette.requests import Request

from app.billing import callers
from app.billing.callers import ServiceKeyCaller, Viewer
from app.config import Settings
from app.http.errors import ApiError
from app.kit.errors import Forbidden, Unauthenticated
from app.kit.ratelimit import Limiter, Rate
from app.metrics import rate_limited


async def authenticate(request: Request) -> Viewer | ServiceKeyCaller:
    """The caller of a /v1 endpoint, from `Authorization: Bearer <token or key>`. Raises
    `ApiError`: 401 without valid credentials, 403 for a caller that may not record
    usage, 429 for one over its rate limit. Runs before the body is read, so nothing is
    spent on strangers; the limit is charged only once the caller is known, so nobody
    can use up another's."""
    settings: Settings = request.app.state.settings
    try:
        caller = await callers.usage_writer(
            settings.jwt_secret(), request.headers.get("authorization")
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
    await _throttle(request, settings, caller)
    return caller


def caller_key(caller: Viewer | ServiceKeyCaller) -> str:
    """The caller's platform bucket, as GraphQL's throttle names it."""
    if isinstance(caller, ServiceKeyCaller):
        return f"service-key:{caller.key_id}"
    return f"operator:{caller.user.id}"


async def _throttle(
    request: Request, settings: Settings, caller: Viewer | ServiceKeyCaller
) -> None:
    # One Redis round trip (or a dict lookup with a memory:// broker) per request.
    limiter: Limiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None or not settings.rate_limit_enabled:
        return
    rate = Rate(settings.rate_limit_operator_per_minute)
    if await limiter.allow([(caller_key(caller), rate)]) is not None:
        rate_limited.labels("operator").inc()
        raise ApiError(
            429,
            "RATE_LIMITED",
            "Too many requests from this caller: nothing was done. Try again in a few seconds.",
            headers={"Retry-After": "1"},
        )
