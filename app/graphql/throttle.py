"""Rate limits for mutations: per caller and per team, answered with RATE_LIMITED.

Checked by `payload_errors` before a mutation's resolver runs, so a refused mutation
does nothing. The counts (app/kit/ratelimit.py) live in Redis with a Redis broker, shared
by every replica, and in process memory only with `BROKER_URL=memory://`:

- each signed-in user, and each team API key: `rate_limit_user_per_minute` mutations;
- each operator and each service key: `rate_limit_operator_per_minute`, much higher,
  because the metering gateway records usage thousands of times a second;
- each team a user's or team key's mutation names (`input.teamId`):
  `rate_limit_team_per_minute` across all its members and keys, so many accounts cannot
  hammer one team's billing together. Charged only once the caller is known to belong to
  the team: a stranger's mutation answers NOT_FOUND anyway, and must not use up the
  bucket the team's own admins need. Operators' and service keys' mutations do not draw
  from the team's bucket: usage is recorded for a team at whatever rate the team
  consumes the platform, and that is billing, not abuse.
"""

from __future__ import annotations

from app.billing.callers import ServiceKeyCaller, Viewer
from app.graphql.context import Context
from app.kit.errors import DomainError, ErrorCode, NotFound, Unauthenticated
from app.kit.ids import parse_uuid
from app.kit.ratelimit import Rate
from app.metrics import rate_limited
from app.teams import service as teams


async def check(info: object, input: object) -> None:
    """Raises DomainError(RATE_LIMITED) when the caller or the team is out of tokens.

    `info` and `input` are the mutation resolver's arguments (either may be absent)."""
    context = getattr(info, "context", None)
    if not isinstance(context, Context):
        return
    limiter = context.rate_limiter
    settings = context.settings
    if limiter is None or not settings.rate_limit_enabled:
        return
    try:
        caller = await context.caller()
    except Unauthenticated:
        return  # the resolver answers UNAUTHENTICATED and does nothing
    checks: list[tuple[str, Rate]] = []
    platform = Rate(settings.rate_limit_operator_per_minute)
    if isinstance(caller, ServiceKeyCaller):
        checks.append((f"service-key:{caller.key_id}", platform))
    elif isinstance(caller, Viewer) and caller.is_operator:
        checks.append((f"operator:{caller.user.id}", platform))
    else:
        who = f"user:{caller.user.id}" if isinstance(caller, Viewer) else f"key:{caller.key_id}"
        checks.append((who, Rate(settings.rate_limit_user_per_minute)))
        team_id = parse_uuid(getattr(input, "team_id", None))
        if team_id is not None and await _is_member(caller, team_id):
            checks.append((f"team:{team_id}", Rate(settings.rate_limit_team_per_minute)))
    refused = await limiter.allow(checks)
    if refused is not None:
        scope = refused.partition(":")[0]
        rate_limited.labels(scope).inc()
        raise DomainError(
            ErrorCode.RATE_LIMITED,
            "Too many requests "
            + ("for this team" if scope == "team" else "from this account")
            + ": nothing was done. Try again in a few seconds.",
        )


async def _is_member(caller: teams.TeamCaller, team_id: object) -> bool:
    """Whether the caller belongs to the team (the resolver still checks the role)."""
    try:
        await teams.team_access(caller, team_id)
    except NotFound:
        return False
    return True
