"""Who is calling, for every interface: the `Authorization: Bearer <value>` header resolved.

- `cls_...`: a service key (the platform's own systems), with its scopes;
- `clt_...`: a team API key, acting on its own team as a member or an admin;
- anything else: a JWT, resolved to its signed-in user (`Viewer`, operator or not).

Keys are verified from an in-process cache (`app/teams/keyring.py`); verified tokens and
their viewers are cached too, so a busy client (the metering gateway) pays for the
verification once per credential, not per request. docs/keys.md has the whole model.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from app.credits import service as credits
from app.kit.errors import Forbidden, Unauthenticated
from app.teams import keyring, tokens
from app.teams import service as teams
from app.teams.audit import service as audit
from app.teams.key_models import ServiceScope
from app.teams.key_secrets import looks_like_key
from app.teams.keyring import KeyCaller, ServiceKeyCaller, TeamKeyCaller
from app.teams.service import TeamCaller, Viewer

__all__ = [
    "Caller",
    "KeyCaller",
    "ServiceKeyCaller",
    "TeamCaller",
    "TeamKeyCaller",
    "Viewer",
    "actor_name",
    "forget_viewers",
    "person",
    "require_usage_writer",
    "resolve",
    "team_caller",
    "usage_writer",
    "viewer_for_token",
]

# Everyone who can authenticate: a user (the operator is a user with `is_operator`), a
# service key, or a team API key.
Caller = Viewer | ServiceKeyCaller | TeamKeyCaller

_VIEWER_CACHE_SIZE = 10_000
_viewers: OrderedDict[str, tuple[Viewer, float]] = OrderedDict()


async def viewer_for_token(verifier: tokens.Verifier, token: str) -> Viewer:
    """The viewer a bearer token signs in; raises `tokens.InvalidToken`."""
    cached = _viewers.get(token)
    if cached is not None and cached[1] > time.time():
        return cached[0]
    claims = await verifier.verify(token)
    viewer = await teams.sign_in(claims, open_team=credits.open_account)
    _viewers[token] = (viewer, claims.expires_at)
    if len(_viewers) > _VIEWER_CACHE_SIZE:
        _viewers.popitem(last=False)
    return viewer


async def resolve(verifier: tokens.Verifier, authorization: str | None) -> Caller:
    """The caller an Authorization header value names; `verifier` checks JWTs.

    Raises Unauthenticated (HTTP 401) when the header is missing, malformed, or names no
    valid credential (unknown, revoked or expired key; bad or expired token)."""
    try:
        token = tokens.bearer(authorization)
    except tokens.InvalidToken as exc:
        raise Unauthenticated(str(exc)) from None
    if looks_like_key(token):
        try:
            return await keyring.ring.verify(token)
        except keyring.InvalidKey as exc:
            raise Unauthenticated(str(exc)) from None
    try:
        return await viewer_for_token(verifier, token)
    except tokens.InvalidToken:
        raise Unauthenticated("invalid or expired bearer token") from None


def require_usage_writer(caller: Caller) -> Viewer | ServiceKeyCaller:
    """The caller if it may record usage for any team: an operator, or a service key with
    `usage:write`. Raises Forbidden (HTTP 403) for anyone else."""
    if isinstance(caller, Viewer) and caller.is_operator:
        return caller
    if isinstance(caller, ServiceKeyCaller) and caller.allows(ServiceScope.USAGE_WRITE):
        return caller
    raise Forbidden("recording usage needs an operator token or a usage:write service key")


async def usage_writer(
    verifier: tokens.Verifier, authorization: str | None
) -> Viewer | ServiceKeyCaller:
    """For the /v1 routes: who records usage; Unauthenticated (401) or Forbidden (403)."""
    return require_usage_writer(await resolve(verifier, authorization))


def team_caller(caller: Caller) -> TeamCaller:
    """The caller, for asking about teams (`teams.team_access`): a user or a team key.
    A service key has no business with teams: Forbidden."""
    if isinstance(caller, ServiceKeyCaller):
        raise Forbidden("a service key does not read or change teams")
    return caller


def person(caller: Caller) -> Viewer:
    """The caller if it is a signed-in user; keys are refused (Forbidden). Everything
    about people (memberships, members, keys, creating teams) is theirs alone."""
    if not isinstance(caller, Viewer):
        raise Forbidden("API keys act on billing only")
    return caller


def actor_name(caller: Caller) -> str:
    """How the caller appears in the audit trail."""
    if isinstance(caller, Viewer):
        return audit.actor_name(caller.user.email, operator=caller.is_operator)
    kind = "team API key" if isinstance(caller, TeamKeyCaller) else "service key"
    return f"{kind} {caller.prefix} ({caller.name})"


def forget_viewers() -> None:
    """Drops every cached caller, tokens and keys alike (tests that empty the tables)."""
    _viewers.clear()
    keyring.ring.forget()
