"""Outgoing webhooks: the body, its signature, one POST (no redirects, bounded)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.events.outbox import OutboxEvent, event_id
from app.kit import text
from app.kit.errors import DomainError, ErrorCode

SIGNATURE_HEADER = "Creditline-Signature"
TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096  # what the delivery log keeps of an answer; the rest is not read
MAX_URL = 2000


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def check_url(url: str) -> str:
    """An absolute http(s) URL; anything else is refused (file:, gopher:, ...)."""
    text.check(url, "url")
    url = url.strip()
    parts = urlsplit(url)
    if (
        len(url) > MAX_URL
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in url)
    ):
        raise DomainError(ErrorCode.INVALID_INPUT, "Enter an http:// or https:// URL.", "url")
    return url


def body_of(event: OutboxEvent) -> bytes:
    """The event as sent: the same bytes on every attempt (the id is stable)."""
    document: dict[str, Any] = {
        "id": event_id(event.id),
        "type": event.type,
        "createdAt": event.created_at.isoformat().replace("+00:00", "Z"),
        "sequence": event.id,  # increases with every event: receivers may order by it
        "data": event.data,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=UNIX,v1=HEX`, HEX = HMAC-SHA256(secret, "{t}.{body}")."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check (documented; used by the tests as a receiver would)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    status_code: int | None
    error: str | None


async def post(client: httpx.AsyncClient, url: str, secret: str, event: OutboxEvent) -> Answer:
    """One attempt: 2xx is delivered; anything else (or no answer) is retried later."""
    body = body_of(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Creditline-Webhooks/1",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        "Creditline-Event-Id": event_id(event.id),
    }
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            kept = b""
            async for chunk in response.aiter_bytes():
                kept += chunk
                if len(kept) >= MAX_RESPONSE_BYTES:
                    break  # never read a large answer: closing the stream drops the rest
            ok = 200 <= response.status_code < 300
            detail = None if ok else f"HTTP {response.status_code}: {kept[:200]!r}"
            return Answer(ok, response.status_code, detail)
    except httpx.HTTPError as exc:
        return Answer(False, None, f"{type(exc).__name__}: {exc}"[:500])


def client() -> httpx.AsyncClient:
    """Never follows redirects (a 3xx is a failed attempt), times out."""
    return httpx.AsyncClient(follow_redirects=False, timeout=TIMEOUT_SECONDS)
