"""Shapes nobody expected: huge headers, deeply nested or huge variables (docs/inputs.md,
"Limits"). Each is a 4xx or a coded error, never a 500, a hang or a stored row."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from app.http.middleware import MAX_HEADER_BYTES
from app.teams.models import Team
from tests.support.api import Actor
from tests.support.subscriptions import PROTOCOL, WAIT, LiveServer

VIEWER = {"query": "{ viewer { id } }"}


async def test_a_huge_authorization_header_is_refused_in_process(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql", json=VIEWER, headers={"Authorization": "Bearer " + "a" * MAX_HEADER_BYTES}
    )
    assert response.status_code == 431
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    # Just under the cap: an ordinary (bad) token, refused as such.
    response = await client.post("/graphql", json=VIEWER, headers={"Authorization": "Bearer x"})
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_many_headers_count_together(client: httpx.AsyncClient) -> None:
    headers = {f"x-h{i}": "v" * 1000 for i in range(40)}
    response = await client.get("/healthz", headers=headers)
    assert response.status_code == 431


async def _raw_request(server: LiveServer, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), WAIT)
    finally:
        writer.close()


async def test_an_8_mb_header_through_uvicorn(server: LiveServer) -> None:
    """uvicorn's httptools parser has no header limit of its own: the guard answers."""
    body = json.dumps(VIEWER).encode()
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + b"a" * 8_000_000 + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    status = await _raw_request(server, head)
    assert status.startswith(b"HTTP/1.1 431"), status


async def test_a_websocket_handshake_with_huge_headers_is_refused(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            server.ws_url,
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            # Lines under 8 KiB each: the websockets parser's own line limit comes first.
            additional_headers={f"X-Big-{i}": "a" * 4000 for i in range(10)},
            open_timeout=WAIT,
        )
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("depth", [17, 500, 5_000, 100_000])
async def test_deeply_nested_variables(client: httpx.AsyncClient, admin: Actor, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = (
        '{"query": "mutation($n: String!) { createTeam(input: {name: $n}) { errors { code } } }",'
        f' "variables": {{"n": "x", "extra": {nested}}}}}'
    )
    response = await client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 400), response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await Team.all().count() == 1


async def test_nesting_within_the_limit_is_fine(client: httpx.AsyncClient, admin: Actor) -> None:
    query = "query($id: ID!) { team(id: $id) { id } }"
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": {"id": admin.team_id, "unused": [[[[{"a": [1]}]]]]}},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.json() == {"data": {"team": {"id": admin.team_id}}}


async def test_huge_variables_stop_at_the_body_cap(client: httpx.AsyncClient, admin: Actor) -> None:
    query = "mutation($n: String!) { createTeam(input: {name: $n}) { errors { code } } }"
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": {"n": "x" * 2_000_000}},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert response.status_code == 413
    assert await Team.all().count() == 1
