"""Bearer tokens: HS256 JWTs with the claims docs/architecture.md lists under "Identity"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from app.kit import text

ALGORITHM = "HS256"


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


def verify(secret: str, token: str) -> Claims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "email", "exp"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
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
