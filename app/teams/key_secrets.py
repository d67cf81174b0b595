"""What an API key's secret looks like, and the one form of it the database keeps."""

from __future__ import annotations

import hashlib
import re
import secrets
from enum import StrEnum

# 32 random bytes written in base62: always 43 characters (zero-padded), nothing to
# escape in a header, a shell or a URL, and a double-click selects the whole secret.
SECRET_BYTES = 32
_BODY_LENGTH = 43
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Shown beside a key's name: the kind and 8 characters (47 bits of the 256 it carries).
PREFIX_LENGTH = 12


class KeyKind(StrEnum):
    """What a secret's first characters say it is."""

    SERVICE = "cls_"
    TEAM = "clt_"


_WELL_FORMED = re.compile(rf"(cls_|clt_)[0-9A-Za-z]{{{_BODY_LENGTH}}}", re.ASCII)


def looks_like_key(token: str) -> bool:
    """Whether a bearer value claims to be an API key (rather than a JWT)."""
    return token.startswith((KeyKind.SERVICE.value, KeyKind.TEAM.value))


def parse_secret(token: str) -> tuple[KeyKind, str] | None:
    """The kind and storage hash of a well-formed secret; None for anything else."""
    if _WELL_FORMED.fullmatch(token) is None:
        return None
    return KeyKind(token[:4]), secret_hash(token)


def secret_hash(secret: str) -> str:
    """How a secret is stored: hex SHA-256. The secret is 256 random bits, so a fast hash
    is safe (nothing to guess); docs/keys.md explains."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_secret(kind: KeyKind) -> str:
    """A fresh secret of `kind`: its prefix and 32 bytes from the OS's CSPRNG."""
    number = int.from_bytes(secrets.token_bytes(SECRET_BYTES), "big")
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    body = "".join(reversed(digits)).rjust(_BODY_LENGTH, "0")
    return kind.value + body
