"""Test set-up: one migrated database per run (SQLite or PostgreSQL), emptied between tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app import db
from app.billing.callers import forget_viewers
from app.config import Environment, Settings
from app.kit import clock
from app.main import create_app
from app.payments import gateway as payment_gateway
from app.payments.emulator import StripeEmulator
from app.payments.stripe import StripeGateway
from tests.support.api import JWT_SECRET, Actor, Api, sign_up
from tests.support.db import empty
from tests.support.payments import STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET
from tests.support.subscriptions import LiveServer


def _database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    path = os.path.join(tempfile.mkdtemp(prefix="creditline-test-"), "test.sqlite3")
    return f"sqlite://{path}"


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[StripeEmulator]:
    """localstripe on 127.0.0.1 (a free port), state in memory; the run fails if it cannot start.
    Its bank debits settle after 1 s."""
    emulator = StripeEmulator(ach_settle_seconds=1.0)
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


@pytest.fixture(autouse=True)
async def clean_database(database: Settings) -> AsyncIterator[None]:
    """Every test starts from empty tables and real time."""
    await empty(database)
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


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


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


@pytest.fixture(scope="module")
async def server(database: Settings) -> AsyncIterator[LiveServer]:
    """The app served by uvicorn in this event loop, for websocket tests (one per module)."""
    live_server = LiveServer(database)
    await live_server.start()
    yield live_server
    await live_server.stop()
