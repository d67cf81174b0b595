"""API keys: made once, stored as hashes, each scope allowed and refused, revoked and expired
keys refused, last uses written in batches. docs/keys.md describes the model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise import connections

from app.billing import callers
from app.config import Settings
from app.events import bus
from app.kit import clock
from app.kit.errors import Forbidden, Unauthenticated
from app.main import create_app
from app.teams import keyring, tokens
from app.teams.key_models import ApiKeySecret, ServiceKey, TeamApiKey
from tests.support.api import JWT_SECRET, Actor, Api, sign_up
from tests.support.keys import (
    CREATE_SERVICE_KEY,
    CREATE_TEAM_KEY,
    REVOKE_SERVICE_KEY,
    REVOKE_TEAM_KEY,
    SERVICE_KEYS,
    TEAM_KEYS,
    service_key,
    team_key,
)
from tests.support.subscriptions import LiveServer, http_api, opened

GRANT = """mutation($t: ID!, $a: Decimal!) {
  grantCredits(input: {teamId: $t, amount: $a}) { errors { code } } }"""
CREDITS = "query($t: ID!) { team(id: $t) { id viewerRole credits { total } } }"
LIMIT = """mutation($t: ID!, $l: Decimal!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: $l}) {
  credits { invoicedSpendingLimit } errors { code field } } }"""
RECORD_USAGE = """mutation($t: ID!, $a: Decimal!, $k: String!) {
  recordUsage(input: {teamId: $t, amount: $a, idempotencyKey: $k}) {
    usage { amount } errors { code } } }"""
ADD_MEMBER = """mutation($t: ID!) {
  addTeamMember(input: {teamId: $t, email: "new@example.com"}) { errors { code } } }"""


async def _usage(api: Api, token: str, team_id: str, amount: str = "0.50") -> dict[str, Any]:
    variables = {"t": team_id, "a": amount, "k": uuid.uuid4().hex}
    data = await api.ok(RECORD_USAGE, variables, token)
    result: dict[str, Any] = data["recordUsage"]
    return result


async def _stored_rows(table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await connections.get("default").execute_query_dict(
        f'SELECT * FROM "{table}"'
    )
    return rows


def _assert_never_stored(rows: list[dict[str, Any]], secret: str) -> None:
    body = secret[4:]
    for row in rows:
        for column, value in row.items():
            assert body not in str(value), f"{column} holds the secret"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert digest in {row["secret_hash"] for row in rows}


async def _escaped(api: Api, query: str, variables: dict[str, Any], token: str) -> Any:
    """A request whose JSON escapes every non-ASCII character, so a lone surrogate
    arrives as the `\\ud800` escape a client may send."""
    response = await api.http.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    body = response.json()
    assert response.status_code == 200, body
    assert not body.get("errors"), body
    return body["data"]


# --- making keys -------------------------------------------------------------------------------


async def test_a_service_key_is_shown_once_and_stored_as_a_hash(api: Api, operator: Actor) -> None:
    key, secret = await service_key(api, operator.token, ["usage:write", "usage:read"])
    assert secret.startswith("cls_")
    assert len(secret) == 47
    assert secret[4:].isalnum()
    assert secret.isascii()
    assert key["name"] == "gateway"
    assert key["scopes"] == ["usage:write", "usage:read"]
    assert key["prefix"] == secret[:12]
    assert key["lastUsedAt"] is None
    assert key["revokedAt"] is None
    assert key["expiresAt"] is None
    _assert_never_stored(await _stored_rows("service_keys"), secret)

    listed = (await api.ok(SERVICE_KEYS, token=operator.token))["serviceKeys"]
    assert listed == [key]
    # Each key its own secret, 256 random bits.
    _, other = await service_key(api, operator.token, ["usage:write"])
    assert other != secret
    assert other[:12] != secret[:12]


async def test_a_team_key_is_shown_once_and_stored_as_a_hash(api: Api, admin: Actor) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    key, secret = await team_key(
        api, admin.token, admin.team_id, ["BILLING_WRITE", "BILLING_READ"], expires_at=expires
    )
    assert secret.startswith("clt_")
    assert len(secret) == 47
    assert key["scopes"] == ["BILLING_READ", "BILLING_WRITE"]
    assert key["prefix"] == secret[:12]
    assert datetime.fromisoformat(key["expiresAt"]) == datetime.fromisoformat(expires)
    _assert_never_stored(await _stored_rows("team_api_keys"), secret)
    listed = (await api.ok(TEAM_KEYS, {"t": admin.team_id}, admin.token))["team"]["apiKeys"]
    assert listed == [key]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "lone \ud800 surrogate"}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": "c1 \x9f control"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"scopes": []}, "scopes"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    api: Api, admin: Actor, operator: Actor, changes: dict[str, Any], field: str
) -> None:
    team_input = {"teamId": admin.team_id, "name": "ci", "scopes": ["BILLING_READ"], **changes}
    data = await _escaped(api, CREATE_TEAM_KEY, {"input": team_input}, admin.token)
    payload = data["createTeamApiKey"]
    assert payload["apiKey"] is None
    assert payload["secret"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)]

    service_input = {"name": "gw", "scopes": ["usage:write"], **changes}
    data = await _escaped(api, CREATE_SERVICE_KEY, {"input": service_input}, operator.token)
    payload = data["createServiceKey"]
    assert payload["key"] is None
    assert payload["secret"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)]
    assert await TeamApiKey.all().count() == 0
    assert await ServiceKey.all().count() == 0


async def test_unknown_scopes_are_refused(api: Api, admin: Actor, operator: Actor) -> None:
    for scopes in (["usage:admin"], ["usage:write", "grant:credits"], ["USAGE:WRITE"]):
        data = await api.ok(
            CREATE_SERVICE_KEY, {"input": {"name": "gw", "scopes": scopes}}, operator.token
        )
        assert data["createServiceKey"]["errors"][0]["field"] == "scopes"
    body = await api.raw(
        CREATE_TEAM_KEY,
        {"input": {"teamId": admin.team_id, "name": "x", "scopes": ["ADMIN"]}},
        admin.token,
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await ServiceKey.all().count() == 0
    assert await TeamApiKey.all().count() == 0


# --- what each key may do ------------------------------------------------------------------------


async def test_a_usage_write_key_records_usage_for_any_team_and_nothing_else(
    api: Api, operator: Actor
) -> None:
    first, second = await sign_up(api), await sign_up(api)
    for actor in (first, second):
        await api.ok(GRANT, {"t": actor.team_id, "a": "5.00"}, operator.token)
    _, secret = await service_key(api, operator.token, ["usage:write"])
    for actor in (first, second):
        result = await _usage(api, secret, actor.team_id)
        assert result["errors"] == []
        assert result["usage"]["amount"] == "0.50"
    batch = await api.ok(
        """mutation($t: ID!, $k: String!) { recordUsageBatch(input: {events: [
          {teamId: $t, amount: "0.25", idempotencyKey: $k}]}) { results { usage { amount } } } }""",
        {"t": first.team_id, "k": uuid.uuid4().hex},
        secret,
    )
    assert batch["recordUsageBatch"]["results"] == [{"usage": {"amount": "0.25"}}]
    # Not a person, not an operator: no grants, no team reads, no viewer.
    assert await api.error_code(GRANT, {"t": first.team_id, "a": "1.00"}, secret) == "FORBIDDEN"
    assert await api.error_code(CREDITS, {"t": first.team_id}, secret) == "FORBIDDEN"
    assert await api.error_code("{ viewer { id } }", token=secret) == "FORBIDDEN"
    assert await api.error_code(SERVICE_KEYS, token=secret) == "FORBIDDEN"
    after = await api.ok(CREDITS, {"t": first.team_id}, operator.token)
    assert after["team"]["credits"]["total"] == "4.25"


async def test_a_usage_read_key_cannot_record_usage(api: Api, operator: Actor) -> None:
    team = await sign_up(api)
    _, secret = await service_key(api, operator.token, ["usage:read"])
    assert (
        await api.error_code(RECORD_USAGE, {"t": team.team_id, "a": "0.10", "k": "k1"}, secret)
        == "FORBIDDEN"
    )


async def test_usage_writer_for_the_http_routes(api: Api, operator: Actor) -> None:
    """`callers.usage_writer`: what /v1 authenticates with; 401 and 403 as typed errors."""
    settings_secret = tokens.Verifier((JWT_SECRET,))
    _, writer = await service_key(api, operator.token, ["usage:write"])
    _, reader = await service_key(api, operator.token, ["usage:read"])
    admin = await sign_up(api)
    _, team_secret = await team_key(api, admin.token, admin.team_id, ["BILLING_WRITE"])

    caller = await callers.usage_writer(settings_secret, f"Bearer {writer}")
    assert isinstance(caller, callers.ServiceKeyCaller)
    ops = await callers.usage_writer(settings_secret, f"Bearer {operator.token}")
    assert isinstance(ops, callers.Viewer)
    assert ops.is_operator
    for refused in (reader, team_secret, admin.token):
        with pytest.raises(Forbidden):
            await callers.usage_writer(settings_secret, f"Bearer {refused}")
    unknown = "cls_" + "A" * 43
    for header in (None, "", "Bearer", "Basic abc", f"Bearer {unknown}", "Bearer cls_\x00"):
        with pytest.raises(Unauthenticated):
            await callers.usage_writer(settings_secret, header)


async def test_a_team_key_acts_on_its_own_team_only(api: Api, admin: Actor) -> None:
    stranger = await sign_up(api, "stranger@example.com")
    _, reader = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    _, writer = await team_key(api, admin.token, admin.team_id, ["BILLING_WRITE"])

    read = await api.ok(CREDITS, {"t": admin.team_id}, reader)
    assert read["team"]["viewerRole"] == "MEMBER"
    assert (await api.ok(CREDITS, {"t": admin.team_id}, writer))["team"]["viewerRole"] == "ADMIN"
    assert await api.error_code(LIMIT, {"t": admin.team_id, "l": "0"}, reader) == "FORBIDDEN"
    changed = await api.ok(LIMIT, {"t": admin.team_id, "l": "0"}, writer)
    assert changed["setInvoicedSpendingLimit"]["errors"] == []

    # Another team answers exactly like a team that does not exist.
    for secret in (reader, writer):
        for query, variables in [
            (CREDITS, {"t": stranger.team_id}),
            (LIMIT, {"t": stranger.team_id, "l": "0"}),
        ]:
            other = await api.raw(query, variables, secret)
            missing = await api.raw(query, {**variables, "t": str(uuid.uuid4())}, secret)
            assert other == missing
            assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_team_key_never_manages_members_or_keys(api: Api, admin: Actor) -> None:
    key, writer = await team_key(api, admin.token, admin.team_id, ["BILLING_WRITE"])
    create = {"input": {"teamId": admin.team_id, "name": "more", "scopes": ["BILLING_WRITE"]}}
    for query, variables in [
        (ADD_MEMBER, {"t": admin.team_id}),
        (CREATE_TEAM_KEY, create),
        (REVOKE_TEAM_KEY, {"t": admin.team_id, "id": key["id"]}),
        (TEAM_KEYS, {"t": admin.team_id}),
        ('mutation { createTeam(input: {name: "x"}) { errors { code } } }', {}),
        ("{ viewer { memberships { role } } }", {}),
    ]:
        assert await api.error_code(query, variables, writer) == "FORBIDDEN", query
    assert await TeamApiKey.all().count() == 1


async def test_changes_made_with_a_team_key_name_the_key_in_the_audit_trail(
    api: Api, admin: Actor
) -> None:
    key, writer = await team_key(api, admin.token, admin.team_id, ["BILLING_WRITE"], name="ci")
    configured = await api.ok(
        """mutation($t: ID!) { configureAutoTopUp(input: {teamId: $t, enabled: false,
          threshold: "5.00", amount: "25.00", monthlyLimit: "100.00"}) { errors { code } } }""",
        {"t": admin.team_id},
        writer,
    )
    assert configured["configureAutoTopUp"]["errors"] == []
    data = await api.ok(
        "query($t: ID!) { team(id: $t) { auditLog { edges { node { actor action } } } } }",
        {"t": admin.team_id},
        admin.token,
    )
    nodes = [e["node"] for e in data["team"]["auditLog"]["edges"]]
    assert {"actor": f"team API key {key['prefix']} (ci)", "action": "AUTO_TOP_UP_CONFIGURED"} in (
        nodes
    )


# --- revocation and expiry ---------------------------------------------------------------------


async def test_a_revoked_key_is_refused_at_once_in_this_process(
    api: Api, admin: Actor, operator: Actor
) -> None:
    key, secret = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    service, service_secret = await service_key(api, operator.token, ["usage:write"])
    assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]["id"] == admin.team_id
    assert (await _usage(api, service_secret, admin.team_id))["errors"]  # no credits: refused

    revoked = await api.ok(REVOKE_TEAM_KEY, {"t": admin.team_id, "id": key["id"]}, admin.token)
    assert revoked["revokeTeamApiKey"]["apiKey"]["revokedAt"] is not None
    assert await api.error_code(CREDITS, {"t": admin.team_id}, secret) == "UNAUTHENTICATED"
    data = await api.ok(REVOKE_SERVICE_KEY, {"id": service["id"]}, operator.token)
    assert data["revokeServiceKey"]["key"]["revokedAt"] is not None
    refused = await api.raw(RECORD_USAGE, {"t": admin.team_id, "a": "1", "k": "x"}, service_secret)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # Revoking again changes nothing; another team's key id is like no key at all.
    again = await api.ok(REVOKE_TEAM_KEY, {"t": admin.team_id, "id": key["id"]}, admin.token)
    assert again["revokeTeamApiKey"]["apiKey"] == revoked["revokeTeamApiKey"]["apiKey"]
    stranger = await sign_up(api)
    for team_id, key_id, token in [
        (stranger.team_id, key["id"], stranger.token),
        (admin.team_id, str(uuid.uuid4()), admin.token),
        (admin.team_id, "not-an-id", admin.token),
    ]:
        data = await api.ok(REVOKE_TEAM_KEY, {"t": team_id, "id": key_id}, token)
        assert data["revokeTeamApiKey"] == {
            "apiKey": None,
            "errors": [{"code": "NOT_FOUND", "field": "keyId"}],
        }


@pytest.fixture
async def short_cache(database: Settings) -> Any:
    """An app whose processes trust a cached key for 0.3 s (API_KEY_CACHE_SECONDS)."""
    create_app(database.model_copy(update={"api_key_cache_seconds": 0.3}), manage_db=False)
    assert keyring.ring.cache_seconds == 0.3
    yield
    create_app(database, manage_db=False)


async def test_a_revocation_another_process_missed_ends_with_the_cache_window(
    api: Api, admin: Actor, short_cache: None
) -> None:
    """Revoked elsewhere with its broker message lost: refused once the window passes."""
    key, secret = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]
    # As another process would: the row changes, no message reaches this one.
    await TeamApiKey.filter(id=key["id"]).update(revoked_at=clock.now())
    assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]  # still cached
    await asyncio.sleep(0.35)
    assert await api.error_code(CREDITS, {"t": admin.team_id}, secret) == "UNAUTHENTICATED"


async def test_a_revocation_message_on_the_broker_evicts_the_key(api: Api, admin: Actor) -> None:
    """Another process revoked the key and said so on the broker: refused at once, long
    before the cache window ends."""
    assert keyring.ring.cache_seconds >= 10
    upkeep = keyring.Upkeep(flush_seconds=3600)
    await upkeep.start()
    try:
        key, secret = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
        assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]
        await TeamApiKey.filter(id=key["id"]).update(revoked_at=clock.now())
        await bus.broker.publish(keyring.KEYS_CHANNEL, key["id"])
        assert await api.error_code(CREDITS, {"t": admin.team_id}, secret) == "UNAUTHENTICATED"
    finally:
        await upkeep.stop()


async def test_an_expired_key_is_refused_even_from_the_cache(
    api: Api, admin: Actor, frozen_clock: None
) -> None:
    expires = (clock.now() + timedelta(hours=1)).isoformat()
    _, secret = await team_key(
        api, admin.token, admin.team_id, ["BILLING_READ"], expires_at=expires
    )
    assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]
    clock.advance(timedelta(minutes=59))
    assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]
    clock.advance(timedelta(minutes=1))
    assert await api.error_code(CREDITS, {"t": admin.team_id}, secret) == "UNAUTHENTICATED"


async def test_a_forged_or_malformed_key_is_unauthenticated(api: Api, admin: Actor) -> None:
    _, secret = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for token in (flipped, secret + "x", secret[:-1], "clt_", "cls_" + secret[4:], secret.lower()):
        assert await api.error_code(CREDITS, {"t": admin.team_id}, token) == "UNAUTHENTICATED"


async def test_a_team_key_is_found_through_its_secret_lookup(api: Api, admin: Actor) -> None:
    """`api_key_secrets` names the key's team (the table of keys is keyed by team), written
    with the key; without that row the secret authenticates nothing."""
    key, secret = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    digest = hashlib.sha256(secret.encode()).hexdigest()
    found = await ApiKeySecret.get(secret_hash=digest)
    assert (str(found.team_id), str(found.key_id)) == (admin.team_id, key["id"])
    _assert_never_stored(await _stored_rows("api_key_secrets"), secret)
    assert (await api.ok(CREDITS, {"t": admin.team_id}, secret))["team"]["viewerRole"] == "MEMBER"

    await ApiKeySecret.filter(secret_hash=digest).delete()
    keyring.ring.clear()
    assert await api.error_code(CREDITS, {"t": admin.team_id}, secret) == "UNAUTHENTICATED"


# --- lastUsedAt without a write per request ------------------------------------------------------


async def test_last_used_advances_without_a_write_per_request(
    api: Api, admin: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    caplog.set_level(logging.DEBUG, logger="tortoise.db_client")
    caplog.clear()
    for _ in range(20):
        await api.ok(CREDITS, {"t": admin.team_id}, secret)
    statements = [r.getMessage() for r in caplog.records if "team_api_keys" in r.getMessage()]
    # One read of the key (the first use), then the cache: no read and no write per request.
    assert len(statements) == 1
    assert statements[0].lstrip().upper().startswith("SELECT")
    assert '"team_id"=' in statements[0].replace(" ", "")  # by its whole key
    assert (await TeamApiKey.get(id=key["id"])).last_used_at is None
    # This process shows its newest use before it is written.
    shown = (await api.ok(TEAM_KEYS, {"t": admin.team_id}, admin.token))["team"]["apiKeys"]
    assert shown[0]["lastUsedAt"] is not None

    caplog.clear()
    assert await keyring.ring.flush() == 1
    writes = [r.getMessage() for r in caplog.records if "team_api_keys" in r.getMessage()]
    assert len(writes) == 1
    assert writes[0].lstrip().upper().startswith("UPDATE")
    assert '"team_id"=' in writes[0].replace(" ", "")  # by its whole key
    stored = (await TeamApiKey.get(id=key["id"])).last_used_at
    assert stored is not None
    assert datetime.fromisoformat(shown[0]["lastUsedAt"]) == stored
    assert await keyring.ring.flush() == 0  # nothing new: nothing written

    # A flush never moves the time back (another process may have written a newer one).
    later = stored + timedelta(hours=1)
    await TeamApiKey.filter(id=key["id"]).update(last_used_at=later)
    await api.ok(CREDITS, {"t": admin.team_id}, secret)
    await keyring.ring.flush()
    assert (await TeamApiKey.get(id=key["id"])).last_used_at == later


# --- subscriptions -------------------------------------------------------------------------------


async def test_a_stream_opened_with_a_team_key_ends_when_the_key_is_revoked(
    server: LiveServer,
) -> None:
    http = http_api(server.http_url)
    try:
        owner = await sign_up(http, "owner@example.com")
        operator = await sign_up(http, "ops@platform.example", operator=True)
        key, secret = await team_key(http, owner.token, owner.team_id, ["BILLING_READ"])
        async with opened(server.ws_url, secret) as ws:
            await ws.subscribe(owner.team_id)
            assert (await ws.next_credits())[0]["total"] == "0.00"
            await http.ok(GRANT, {"t": owner.team_id, "a": "2.00"}, operator.token)
            assert (await ws.next_credits())[0]["total"] == "2.00"

            await http.ok(REVOKE_TEAM_KEY, {"t": owner.team_id, "id": key["id"]}, owner.token)
            await http.ok(GRANT, {"t": owner.team_id, "a": "3.00"}, operator.token)
            ended = await ws.recv()
            assert ended["type"] == "next", ended
            assert ended["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            assert "data" not in ended["payload"] or ended["payload"]["data"] is None
            assert await ws.recv() == {"id": "1", "type": "complete"}
    finally:
        await http.http.aclose()
