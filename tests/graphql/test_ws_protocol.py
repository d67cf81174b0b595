"""graphql-transport-ws with malformed frames and messages in every protocol state: each
ends in a protocol close code (or an `error` message for a bad operation), never a server
error or a socket left hanging, and the server keeps serving (docs/inputs.md, "Limits")."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets

from tests.support.api import Actor, Api, sign_up
from tests.support.subscriptions import CREDITS, WAIT, LiveServer, Ws, http_api

Frame = str | bytes
DEEP: Any = 1
for _ in range(20):
    DEEP = [DEEP]


@pytest.fixture
async def owner(server: LiveServer) -> Actor:
    api = http_api(server.http_url)
    try:
        return await sign_up(api)
    finally:
        await api.http.aclose()


async def _close_code(ws: Ws) -> int:
    """Waits for the server's close (anything it sends first is skipped)."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.conn.recv()
    except websockets.ConnectionClosed:
        pass
    assert ws.conn.close_code is not None
    return ws.conn.close_code


async def _still_serving(server: LiveServer, owner: Actor) -> None:
    ws = await Ws.open(server.ws_url, owner.token)
    await ws.subscribe(owner.team_id)
    credits, _ = await ws.next_credits()
    assert credits["total"] == "0.00"
    await ws.close()


def _no_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


BEFORE_INIT: list[tuple[str, Frame, set[int]]] = [
    ("bad json", "{nope", {4400}),
    ("a json array", "[]", {4400}),
    ("a json number", "1", {4400}),
    ("json null", "null", {4400}),
    ("no type", json.dumps({"payload": {}}), {4400}),
    ("a numeric type", json.dumps({"type": 5}), {4400}),
    ("an unknown type", json.dumps({"type": "hello"}), {4400}),
    ("a server message", json.dumps({"type": "connection_ack"}), {4400}),
    ("a binary frame", b"\x00\x01binary", {4400}),
    ("json nested too deep", "[" * 100_000 + "]" * 100_000, {4400}),
    ("an init payload that is not an object", json.dumps({"type": "connection_init", "payload": "x"}), {4400}),
    ("an init with a non-string token", json.dumps({"type": "connection_init", "payload": {"Authorization": 5}}), {4403}),
    ("an init with a NUL in the token", json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer a\u0000b"}}), {4403}),
    ("a subscribe", json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { id } }"}}), {4401}),
    ("an oversized message", json.dumps({"type": "connection_init", "payload": {"x": "a" * 2_000_000}}), {1009, 4400, 4403}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "codes"), [c[1:] for c in BEFORE_INIT], ids=[c[0] for c in BEFORE_INIT]
)
async def test_before_connection_init(
    server: LiveServer, owner: Actor, caplog: pytest.LogCaptureFixture, frame: Frame, codes: set[int]
) -> None:  # fmt: skip
    ws = await Ws.connect(server.ws_url, max_size=None)
    await ws.conn.send(frame)
    assert await _close_code(ws) in codes
    await _still_serving(server, owner)
    _no_server_errors(caplog)


def _subscribe(op: Any, payload: Any) -> str:
    return json.dumps({"id": op, "type": "subscribe", "payload": payload})


AFTER_INIT: list[tuple[str, Frame, set[int]]] = [
    ("bad json", "{nope", {4400}),
    ("a binary frame", b"\xff\xfe", {4400}),
    ("a second connection_init", json.dumps({"type": "connection_init", "payload": {}}), {4429}),
    ("a subscribe without an id", json.dumps({"type": "subscribe", "payload": {"query": "{ viewer { id } }"}}), {4400}),
    ("a numeric id", _subscribe(5, {"query": "{ viewer { id } }"}), {4400}),
    ("a payload that is not an object", _subscribe("1", "query"), {4400}),
    ("a payload without a query", _subscribe("1", {"variables": {}}), {4400}),
    ("a numeric query", _subscribe("1", {"query": 5}), {4400}),
    ("variables that are a list", _subscribe("1", {"query": "{ viewer { id } }", "variables": [1]}), {4400}),
    ("a server message", json.dumps({"id": "1", "type": "next", "payload": {}}), {4400}),
    ("an unknown type", json.dumps({"type": "subscribe2"}), {4400}),
    ("json nested too deep", "[" * 100_000 + "]" * 100_000, {4400}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "codes"), [c[1:] for c in AFTER_INIT], ids=[c[0] for c in AFTER_INIT]
)
async def test_after_connection_init(
    server: LiveServer, owner: Actor, caplog: pytest.LogCaptureFixture, frame: Frame, codes: set[int]
) -> None:  # fmt: skip
    ws = await Ws.open(server.ws_url, owner.token)
    await ws.conn.send(frame)
    assert await _close_code(ws) in codes
    await _still_serving(server, owner)
    _no_server_errors(caplog)


async def test_a_duplicate_subscription_id_closes_with_4409(
    server: LiveServer, owner: Actor
) -> None:
    ws = await Ws.open(server.ws_url, owner.token)
    await ws.subscribe(owner.team_id, "same")
    await ws.next_credits("same")
    await ws.subscribe(owner.team_id, "same")
    assert await _close_code(ws) == 4409


async def test_unknown_ids_and_pings_are_harmless(server: LiveServer, owner: Actor) -> None:
    ws = await Ws.open(server.ws_url, owner.token)
    await ws.send({"id": "never-subscribed", "type": "complete"})
    await ws.send({"type": "pong", "payload": {"any": ["thing"]}})
    await ws.conn.send(json.dumps({"type": "ping", "payload": {"x": 1}}))
    assert json.loads(await asyncio.wait_for(ws.conn.recv(), WAIT))["type"] == "pong"
    await ws.subscribe(owner.team_id)
    credits, _ = await ws.next_credits()
    assert credits["total"] == "0.00"
    await ws.close()


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"teamId": "a\u0000b"}, "INVALID_INPUT"),
        ({"teamId": "\ud800"}, "INVALID_INPUT"),
        ({"teamId": "x", "deep": DEEP}, "BAD_REQUEST"),
        ({"teamId": 5}, "NOT_FOUND"),
        ({}, "BAD_REQUEST"),
    ],
)
async def test_bad_variables_answer_an_error_message(
    server: LiveServer, owner: Actor, variables: dict[str, Any], code: str
) -> None:
    ws = await Ws.open(server.ws_url, owner.token)
    await ws.send(
        {"id": "1", "type": "subscribe", "payload": {"query": CREDITS, "variables": variables}}
    )
    message = await ws.recv()
    assert message["type"] in ("error", "next"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == code, message
    # The connection lives on.
    await ws.subscribe(owner.team_id, "2")
    credits, _ = await ws.next_credits("2")
    assert credits["total"] == "0.00"
    await ws.close()


async def test_a_mutation_over_the_socket_is_guarded_too(server: LiveServer, owner: Actor) -> None:
    ws = await Ws.open(server.ws_url, owner.token)
    query = "mutation($n: String!) { createTeam(input: {name: $n}) { errors { code field } } }"
    await ws.send(
        {"id": "m", "type": "subscribe", "payload": {"query": query, "variables": {"n": "\x00"}}}
    )
    message = await ws.recv()
    assert message["type"] == "next", message
    assert message["payload"]["data"]["createTeam"]["errors"] == [
        {"code": "INVALID_INPUT", "field": "name"}
    ]
    await ws.close()


async def test_http_api_still_answers(server: LiveServer) -> None:
    api: Api = http_api(server.http_url)
    try:
        assert await api.error_code("{ viewer { id } }") == "UNAUTHENTICATED"
    finally:
        await api.http.aclose()
