"""Bearer tokens: JWTs with the claims docs/architecture.md lists under "Identity".

Two kinds are verified (docs/deploy.md, "Tokens"):

- HS256, signed with AUTH_JWT_SECRET: the tokens this service mints itself (the console's
  sign-in, `creditline token`). The setting may list several secrets, comma-separated:
  the first signs, every one verifies, so a secret is rotated without signing anyone out.
- RS256 or ES256 from the host platform's identity provider, when AUTH_JWKS_URL is set:
  the public keys come from its JWKS document (`JwksKeys`), and the token must name
  AUTH_ISSUER and AUTH_AUDIENCE.

The algorithm is taken from the key, never from the token alone: an HS256 token is only
checked against the secrets, an RS256/ES256 token only against the JWKS key of its `kid`
and that key's own algorithm (so a public key is never used as an HMAC secret).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import structlog

from app.config import Settings
from app.kit import text

log = structlog.get_logger(__name__)

ALGORITHM = "HS256"
# What an identity provider's key may sign with: RSA PKCS#1 and ECDSA P-256.
JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})
_REQUIRED = ["sub", "email", "exp"]


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    email: str
    name: str | None
    operator: bool
    expires_at: float


class InvalidToken(Exception):
    """Missing, malformed, expired or wrongly signed."""


def mint(
    secret: str,
    *,
    subject: str,
    email: str,
    name: str | None = None,
    operator: bool = False,
    ttl: timedelta = timedelta(hours=12),
) -> str:
    # Real time, not the service clock: PyJWT checks `exp` against the wall clock.
    issued = datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": subject,
        "email": email,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if name:
        payload["name"] = name
    if operator:
        payload["operator"] = True
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str | Sequence[str], token: str) -> Claims:
    """An HS256 token's claims, if any of the secrets signed it (the rotation's old and
    new alike); raises InvalidToken."""
    secrets = [secret] if isinstance(secret, str) else secret
    problem = "no secret to verify with"
    for candidate in secrets:
        try:
            payload = jwt.decode(
                token,
                candidate,
                algorithms=[ALGORITHM],
                options={"require": _REQUIRED},
                leeway=5,
            )
        except jwt.InvalidSignatureError as exc:
            problem = str(exc)  # perhaps another secret's
            continue
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return _claims(payload)
    raise InvalidToken(problem)


def _claims(payload: dict[str, Any]) -> Claims:
    subject, email, name = payload.get("sub"), payload.get("email"), payload.get("name")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise InvalidToken("bad sub claim")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise InvalidToken("bad email claim")
    if name is not None and not isinstance(name, str):
        raise InvalidToken("bad name claim")
    # Stored on the user's row: text the database refuses would fail sign-in with a 500.
    if not all(text.is_storable(claim) for claim in (subject, email, name or "")):
        raise InvalidToken("a claim holds text that cannot be stored")
    return Claims(
        subject=subject,
        email=email.strip().lower(),
        name=name[:255] if name else None,
        operator=payload.get("operator") is True,
        expires_at=float(payload["exp"]),
    )


def bearer(header: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` header value."""
    if not header:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("expected 'Bearer <token>'")
    return token.strip()


def unverified_expiry(token: str) -> float | None:
    """A token's `exp`, read without checking the signature: only for a token already
    verified (the websocket's timer at its expiry)."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    expires = payload.get("exp")
    return float(expires) if isinstance(expires, int | float) else None


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, unverified (which key and algorithm to try)."""
    try:
        head = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed token") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    return header


class JwksKeys:
    """The identity provider's public keys, by `kid`, from its JWKS document.

    Fetched on first use and again once `refresh_seconds` old; a `kid` not in the copy
    (the provider rotated its keys) fetches again at once, but at most once per
    `min_refresh_seconds`, so tokens with made-up kids cannot turn every request into a
    fetch. When a fetch fails the keys already held stay in use; with none held, the
    token is refused (a 401), never a 500.
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.refresh_seconds = refresh_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.timeout = timeout
        self.fetches = 0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._fetching: asyncio.Future[None] | None = None

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key named `kid`; raises InvalidToken when the provider has none such."""
        now = time.monotonic()
        found = self._keys.get(kid)
        stale = now - self._fetched_at >= self.refresh_seconds
        if found is None or stale:
            fetching = self._fetching
            if fetching is not None and not fetching.done():
                # Another request is fetching already: its answer is this one's too.
                await asyncio.shield(fetching)
            elif now - self._attempted_at >= self.min_refresh_seconds:
                self._attempted_at = now
                fetching = self._fetching = asyncio.ensure_future(self._fetch())
                await asyncio.shield(fetching)
            found = self._keys.get(kid)
        if found is None:
            raise InvalidToken("no signing key with this kid")
        return found

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
            keys = {
                key.key_id: key
                for key in jwt.PyJWKSet.from_dict(document).keys
                if key.key_id and key.algorithm_name in JWKS_ALGORITHMS
            }
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            # Expected while the provider is down: one line, the held keys stay.
            log.warning("tokens.jwks_fetch_failed", url=self.url, error=str(exc)[:200])
            return
        self._keys = keys
        self._fetched_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class Verifier:
    """Everything that verifies a bearer token under one configuration."""

    secrets: tuple[str, ...]
    jwks: JwksKeys | None = None
    issuer: str = ""
    audience: str = ""

    async def verify(self, token: str) -> Claims:
        """The token's claims; raises InvalidToken (missing, malformed, expired, unknown
        key, wrong issuer or audience, or signed otherwise than its key says)."""
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm == ALGORITHM:
            return verify(self.secrets, token)
        if self.jwks is None or algorithm not in JWKS_ALGORITHMS:
            raise InvalidToken("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key (kid)")
        key = await self.jwks.key(kid)
        if key.algorithm_name != algorithm:
            raise InvalidToken("the token's algorithm is not its key's")
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": [*_REQUIRED, "iss", "aud"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return _claims(payload)


_verifiers: dict[tuple[str, str, str, str, float, float], Verifier] = {}


def verifier(settings: Settings) -> Verifier:
    """The verifier of these settings, built once per configuration (the JWKS cache with
    it), so every request of the process shares one."""
    settings.jwt_secret()  # in development, generates the secret on first use
    key = (
        settings.auth_jwt_secret,
        settings.auth_jwks_url,
        settings.auth_issuer,
        settings.auth_audience,
        settings.auth_jwks_refresh_seconds,
        settings.auth_jwks_min_refresh_seconds,
    )
    found = _verifiers.get(key)
    if found is None:
        jwks = (
            JwksKeys(
                settings.auth_jwks_url,
                refresh_seconds=settings.auth_jwks_refresh_seconds,
                min_refresh_seconds=settings.auth_jwks_min_refresh_seconds,
            )
            if settings.auth_jwks_url
            else None
        )
        found = _verifiers[key] = Verifier(
            tuple(settings.jwt_secrets()), jwks, settings.auth_issuer, settings.auth_audience
        )
    return found
