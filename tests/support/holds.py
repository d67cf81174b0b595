"""Holds through the services and over `/v1/holds`, for the tests of both."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from app.credits import holds
from app.credits.holds import HoldRequest
from app.credits.models import Hold
from tests.support.credits import units


async def hold(
    team_id: uuid.UUID | str, amount: str, key: str | None = None, *, ttl: int = 600
) -> Hold:
    """Creates a hold through the service (raises the service's errors)."""
    request = HoldRequest(
        team_id=uuid.UUID(str(team_id)),
        amount=units(amount),
        idempotency_key=key or uuid.uuid4().hex,
        expires_in_seconds=ttl,
    )
    return await holds.create_hold(request)


async def post(
    client: httpx.AsyncClient, path: str, token: str | None, body: object = None
) -> tuple[int, dict[str, Any]]:
    """POSTs JSON (or raw bytes) to a /v1 path; the status and the decoded answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, bytes):
        response = await client.post(path, content=body, headers=headers)
    elif body is None:
        response = await client.post(path, headers=headers)
    else:
        # Escaped as JSON allows (httpx's own encoder cannot send a lone surrogate).
        content = json.dumps(body, ensure_ascii=True).encode()
        headers["Content-Type"] = "application/json"
        response = await client.post(path, content=content, headers=headers)
    answer: dict[str, Any] = response.json()
    return response.status_code, answer
