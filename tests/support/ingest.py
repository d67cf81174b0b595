"""The /v1 HTTP API as the metering gateway calls it."""

from __future__ import annotations

import json
from typing import Any

import httpx


def event(team_id: str, amount: str, key: str, **extra: Any) -> dict[str, Any]:
    """A usage event body (camelCase fields)."""
    return {"teamId": team_id, "amount": amount, "idempotencyKey": key, **extra}


async def post(
    http: httpx.AsyncClient, path: str, body: Any, token: str | None
) -> tuple[int, dict[str, Any]]:
    """POSTs JSON (a `bytes` body is sent as it is); the status and the decoded answer.
    Text is sent ASCII-escaped, so a lone surrogate travels as `\\ud800`, as JSON allows."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await http.post(path, content=content, headers=headers)
    assert response.headers["content-type"] == "application/json", response.text
    answer: dict[str, Any] = response.json()
    return response.status_code, answer


def code(answer: dict[str, Any]) -> str:
    """The error code of an answer or of one batch result."""
    value: str = answer["error"]["code"]
    return value
