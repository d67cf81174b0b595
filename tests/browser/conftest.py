"""Browser tests: headless Debian Chromium (Playwright) against a real server subprocess.

One server (with its localstripe emulator) for the whole package; each test gets a fresh
browser context, so a fresh sign-in. Screenshots go to test-artifacts/screens/, printed at
the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.browser.harness import SCREENS, Server, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def clean_database() -> None:
    """Overrides the suite's table cleaning: the server subprocess owns its database."""


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    # PostgreSQL when the suite runs on it (TEST_DATABASE_URL), else a temp SQLite file.
    running = start_server(os.environ.get("TEST_DATABASE_URL"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    SCREENS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser, server: Server) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    assert not errors, f"uncaught errors in the page: {errors}"


class Gql:
    """Another client of the same server (the metering gateway, an operator)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url, timeout=30)

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
async def gql(server: Server) -> AsyncIterator[Gql]:
    client = Gql(server)
    try:
        yield client
    finally:
        await client.http.aclose()


@pytest.fixture
def operator_token(server: Server) -> str:
    return server.token("operator@example.com", operator=True, name="Operator")


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENS.is_dir() and any(SCREENS.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {Path(SCREENS).resolve()}")
