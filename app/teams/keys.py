"""API keys: making, listing and revoking them (docs/keys.md).

A secret's format is `app/teams/key_secrets.py`; verifying a presented secret, with its
in-process cache, is `app/teams/keyring.py`.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.ids import parse_uuid
from app.teams import keyring
from app.teams.key_models import (
    ApiKeyFields,
    ApiKeySecret,
    ServiceKey,
    ServiceScope,
    TeamApiKey,
    TeamKeyScope,
)
from app.teams.key_secrets import PREFIX_LENGTH, KeyKind, new_secret, secret_hash
from app.teams.models import Team

MAX_NAME = 100
MAX_SERVICE_KEYS = 100  # live (unrevoked) service keys
MAX_TEAM_KEYS = 50  # live keys per team

# Control characters, line and paragraph separators, and lone surrogates (which no
# database encoding stores).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


K = TypeVar("K", bound=ApiKeyFields)


@dataclass(frozen=True, slots=True)
class IssuedKey(Generic[K]):
    """A key just made and its secret: the only time the secret exists outside its holder."""

    key: K
    secret: str


def scope_names(key: ApiKeyFields) -> list[str]:
    return key.scopes.split()


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or _UNPRINTABLE.search(cleaned):
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Name the key with printable characters.", "name"
        )
    if len(cleaned) > MAX_NAME:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"A key's name takes at most {MAX_NAME} characters.", "name"
        )
    return cleaned


def _service_scopes(scopes: Iterable[str]) -> list[ServiceScope]:
    chosen: list[ServiceScope] = []
    for scope in scopes:
        try:
            parsed = ServiceScope(scope)
        except ValueError:
            known = ", ".join(s.value for s in ServiceScope)
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"Unknown scope; the scopes are {known}.", "scopes"
            ) from None
        if parsed not in chosen:
            chosen.append(parsed)
    if not chosen:
        raise DomainError(ErrorCode.INVALID_INPUT, "Give the key at least one scope.", "scopes")
    return chosen


def _team_scopes(scopes: Iterable[TeamKeyScope]) -> list[TeamKeyScope]:
    chosen = [s for s in TeamKeyScope if s in set(scopes)]
    if not chosen:
        raise DomainError(ErrorCode.INVALID_INPUT, "Give the key at least one scope.", "scopes")
    return chosen


def _expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= clock.now():
        raise DomainError(ErrorCode.INVALID_INPUT, "The expiry must be in the future.", "expiresAt")
    return expires_at


def _issue(key: K, kind: KeyKind, name: str, scopes: Iterable[str], actor: str) -> IssuedKey[K]:
    """Fills in a new key's identity and secret; the caller saves it."""
    secret = new_secret(kind)
    key.id = uuid.uuid4()
    key.name = name
    key.scopes = " ".join(scopes)
    key.prefix = secret[:PREFIX_LENGTH]
    key.secret_hash = secret_hash(secret)
    key.created_by = actor[:400]
    key.created_at = clock.now()
    return IssuedKey(key, secret)


async def create_service_key(
    name: str, scopes: Iterable[str], *, actor: str, expires_at: datetime | None = None
) -> IssuedKey[ServiceKey]:
    cleaned, chosen, expiry = clean_name(name), _service_scopes(scopes), _expiry(expires_at)
    if await ServiceKey.filter(revoked_at=None).count() >= MAX_SERVICE_KEYS:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Too many service keys: revoke unused ones first.", "name"
        )
    issued = _issue(ServiceKey(expires_at=expiry), KeyKind.SERVICE, cleaned, chosen, actor)
    await issued.key.save(force_create=True)
    return issued


async def service_keys() -> list[ServiceKey]:
    """Every service key, revoked ones included, newest first."""
    return await ServiceKey.all().order_by("-created_at", "id")


async def create_team_key(
    team: Team,
    name: str,
    scopes: Iterable[TeamKeyScope],
    *,
    actor: str,
    expires_at: datetime | None = None,
) -> IssuedKey[TeamApiKey]:
    cleaned, chosen, expiry = clean_name(name), _team_scopes(scopes), _expiry(expires_at)
    async with atomic():
        # The team's row serialises key creation, so the cap holds under concurrency.
        await Team.select_for_update(no_key=True).get(id=team.id)
        if await TeamApiKey.filter(team_id=team.id, revoked_at=None).count() >= MAX_TEAM_KEYS:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"A team holds at most {MAX_TEAM_KEYS} keys: revoke unused ones first.",
                "name",
            )
        key = TeamApiKey(team_id=team.id, expires_at=expiry)
        issued = _issue(key, KeyKind.TEAM, cleaned, chosen, actor)
        await key.save(force_create=True)
        # In the same transaction: the lookup that finds the key's team from its secret.
        await ApiKeySecret.create(secret_hash=key.secret_hash, team_id=team.id, key_id=key.id)
    return issued


async def team_keys(team_id: uuid.UUID) -> list[TeamApiKey]:
    """The team's keys, revoked ones included, newest first."""
    return await TeamApiKey.filter(team_id=team_id).order_by("-created_at", "id")


def _not_found() -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, "No such key.", "keyId")


async def revoke_service_key(key_id: object, *, actor: str) -> ServiceKey:
    """Revokes the key (a second time changes nothing); every process stops accepting it."""
    parsed = parse_uuid(key_id)
    key = await ServiceKey.get_or_none(id=parsed) if parsed else None
    if key is None:
        raise _not_found()
    return await _revoke(key, actor)


async def revoke_team_key(team: Team, key_id: object, *, actor: str) -> TeamApiKey:
    """Revokes one of the team's keys; another team's key is NOT_FOUND, like no key."""
    parsed = parse_uuid(key_id)
    key = await TeamApiKey.get_or_none(id=parsed, team_id=team.id) if parsed else None
    if key is None:
        raise _not_found()
    return await _revoke(key, actor)


async def _revoke(key: K, actor: str) -> K:
    if key.revoked_at is not None:
        return key
    async with atomic() as tx:
        # Only a key still unrevoked is written: of two revocations, the first's record stays.
        now, by = clock.now(), actor[:400]
        row = type(key).filter(id=key.id, revoked_at=None)
        if isinstance(key, TeamApiKey):
            row = row.filter(team_id=key.team_id)
        updated = await row.update(revoked_at=now, revoked_by=by)
        if updated:
            key.revoked_at, key.revoked_by = now, by
            # Ends the key at once in this process, and within a broker message elsewhere.
            tx.after(functools.partial(keyring.revoked, key.id))
    if not updated:
        await key.refresh_from_db()
    return key
