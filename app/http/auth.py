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
from app.kit.origin import client_address
from app.kit.ratelimit import Blocklist, Limiter, Rate
from app.metrics import rate_limited
from app.teams import tokens


async def authenticate(request: Request) -> Viewer | ServiceKeyCaller:
    """The caller of a /v1 endpoint, from `Authorization: Bearer <token or key>`. Raises
    `ApiError`: 401 without valid credentials, 403 for a caller that may not record
    usage, 429 for one over its rate limit. Runs before the body is read, so nothing is
    spent on strangers; the limit is charged only once the caller is known, so nobody
    can use up another's."""
    settings: Settings = request.app.state.settings
    strangers: Blocklist | None = getattr(request.app.state, "strangers", None)
    address: str | None = None
    if strangers:  # someone has been refused: a dictionary lookup, no network
        address = client_address(request, settings.trusted_proxies)
        if strangers.blocked(address):
            raise _too_many("from this address")
    try:
        caller = await callers.usage_writer(
            tokens.verifier(settings), request.headers.get("authorization")
        )
    except Unauthenticated:
        await _count_stranger(request, settings, strangers, address)
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
        raise _too_many("from this caller")


# How long an address over its limit of failed authentications is refused by a process
# without asking Redis again: the shared count's window.
STRANGER_BLOCK_SECONDS = 60.0


async def _count_stranger(
    request: Request, settings: Settings, strangers: Blocklist | None, address: str | None
) -> None:
    """Counts a request without valid credentials against its client address (the only
    thing known of it). Over the limit, the address is refused before authentication
    (429) in this process for a minute, so guessing keys stops at the limit across the
    cluster, give or take one try per process."""
    limiter: Limiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None or strangers is None or not settings.rate_limit_enabled:
        return
    address = address or client_address(request, settings.trusted_proxies)
    rate = Rate(settings.rate_limit_unauthenticated_per_minute)
    if await limiter.allow([(f"address:{address}", rate)]) is not None:
        strangers.block(address, STRANGER_BLOCK_SECONDS)
        rate_limited.labels("address").inc()
        raise _too_many("from this address")


def _too_many(source: str) -> ApiError:
    return ApiError(
        429,
        "RATE_LIMITED",
        f"Too many requests {source}: nothing was done. Try again in a few seconds.",
        headers={"Retry-After": "1"},
    )
