"""Test set-up: one migrated database per run (SQLite or PostgreSQL), emptied between tests."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from tortoise import Tortoise, connections

from app import db
from app.config import Environment, Settings
from app.graphql.context import forget_viewers
from app.kit import clock
from app.main import create_app
from app.payments import gateway as payment_gateway
from app.payments.emulator import StripeEmulator
from app.payments.stripe import StripeGateway
from app.teams import tokens

JWT_SECRET = "test-secret-not-for-production-use-0123456789"
STRIPE_API_KEY = "sk_test_creditline"
STRIPE_WEBHOOK_SECRET = "whsec_test_creditline_0123456789"


def _database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    path = os.path.join(tempfile.mkdtemp(prefix="creditline-test-"), "test.sqlite3")
    return f"sqlite://{path}"


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[StripeEmulator]:
    """localstripe on 127.0.0.1 (a free port), state in memory; the run fails if it cannot start."""
    emulator = StripeEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def settings(stripe_emulator: StripeEmulator) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=_database_url(),
        auth_jwt_secret=JWT_SECRET,
        stripe_api_key=STRIPE_API_KEY,
        stripe_api_base=stripe_emulator.url,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_max_network_retries=0,
    )


@pytest.fixture(scope="session", autouse=True)
async def stripe_gateway(database: Settings) -> AsyncIterator[StripeGateway]:
    """The process's Stripe client (the app's lifespan does this outside tests)."""
    gateway = payment_gateway.init_gateway(database)
    yield gateway
    await payment_gateway.close_gateway()


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Settings]:
    await db.migrate(settings)
    await db.init_db(settings)
    yield settings
    await db.close_db()


def _tables() -> list[str]:
    names = []
    for app_models in Tortoise.apps.values():
        for model in app_models.values():
            names.append(model._meta.db_table)
    return names


@pytest.fixture(autouse=True)
async def clean_database(database: Settings) -> AsyncIterator[None]:
    """Every test starts from empty tables and real time."""
    conn = connections.get("default")
    tables = _tables()
    if database.is_sqlite:
        await conn.execute_script(
            "PRAGMA foreign_keys=OFF;"
            + "".join(f'DELETE FROM "{t}";' for t in tables)
            + "PRAGMA foreign_keys=ON;"
        )
    else:
        await conn.execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE;"
        )
    clock.reset()
    forget_viewers()
    yield
    clock.reset()


@pytest.fixture
async def client(database: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(database, manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def make_token(email: str, *, operator: bool = False, name: str | None = None) -> str:
    return tokens.mint(
        JWT_SECRET, subject=f"sub:{email}", email=email, name=name, operator=operator
    )


class Api:
    """A GraphQL client as the console or the metering gateway would use it."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The data of a request that must not fail at the top level."""
        body = await self.raw(query, variables, token)
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    async def error_code(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> str:
        body = await self.raw(query, variables, token)
        assert body.get("errors"), body
        code: str = body["errors"][0]["extensions"]["code"]
        return code


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


class Actor:
    """A signed-in user with their personal team."""

    def __init__(self, email: str, token: str, team_id: str) -> None:
        self.email = email
        self.token = token
        self.team_id = team_id


async def sign_up(api: Api, email: str | None = None, *, operator: bool = False) -> Actor:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    token = make_token(email, operator=operator)
    data = await api.ok("{ viewer { memberships { team { id } role } } }", token=token)
    team_id = data["viewer"]["memberships"][0]["team"]["id"]
    return Actor(email, token, team_id)


@pytest.fixture
async def admin(api: Api) -> Actor:
    return await sign_up(api, "admin@example.com")


@pytest.fixture
async def operator(api: Api) -> Actor:
    return await sign_up(api, "ops@platform.example", operator=True)


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    yield
    clock.reset()
