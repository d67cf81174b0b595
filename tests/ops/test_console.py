"""The console's server side: configuration, development sign-in, SPA fallback, offline IDE."""

from __future__ import annotations

import re

import httpx
import pytest

from app.config import Environment, Settings
from app.console import BUILD_DIR, config
from app.main import create_app
from app.teams import tokens
from tests.support.api import JWT_SECRET


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": Environment.TEST,
        "auth_jwt_secret": JWT_SECRET,
        "database_url": "sqlite://:memory:",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _client(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings, manage_db=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_stripe_js_comes_from_the_emulator_when_the_api_base_is_local() -> None:
    local = config(_settings(stripe_api_base="http://127.0.0.1:8420/"))
    assert local["stripeJsUrl"] == "http://127.0.0.1:8420/js.stripe.com/v3/"
    assert str(local["stripePublishableKey"]).startswith("pk_test_")
    assert local["devSignIn"] is True
    for base in ("", "https://api.stripe.com"):
        assert config(_settings(stripe_api_base=base))["stripeJsUrl"] == (
            "https://js.stripe.com/v3/"
        )
    production = config(_settings(environment=Environment.PRODUCTION))
    assert production["devSignIn"] is False
    assert production["stripePublishableKey"] == ""  # STRIPE_PUBLISHABLE_KEY is not set here


async def test_dev_token_signs_in_any_email(client: httpx.AsyncClient) -> None:
    response = await client.post("/dev/token", json={"email": " Ada@Example.com ", "name": "Ada"})
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    claims = tokens.verify(JWT_SECRET, token)
    assert (claims.email, claims.name, claims.operator) == ("ada@example.com", "Ada", False)
    viewer = await client.post(
        "/graphql",
        json={"query": "{ viewer { email memberships { role } } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert viewer.json()["data"]["viewer"] == {
        "email": "ada@example.com",
        "memberships": [{"role": "ADMIN"}],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({}, "email"),
        ({"email": "a@b.co", "name": 5}, "name"),
        ([1, 2], None),
    ],
)
async def test_dev_token_refuses_bad_input_by_field(
    client: httpx.AsyncClient, body: object, field: str | None
) -> None:
    response = await client.post("/dev/token", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    garbage = await client.post("/dev/token", content=b"{nope")
    assert garbage.status_code == 400


async def test_no_dev_sign_in_in_production() -> None:
    async with _client(_settings(environment=Environment.PRODUCTION)) as http:
        response = await http.post("/dev/token", json={"email": "ada@example.com"})
        assert response.status_code == 404
        assert (await http.get("/console-config.json")).json()["devSignIn"] is False


async def test_console_routes_fall_back_to_the_app_but_api_paths_do_not(
    client: httpx.AsyncClient,
) -> None:
    assert (BUILD_DIR / "index.html").is_file(), "build the console first (./scripts/test does)"
    for path in ("/", "/t/some-team/credits", "/t/some-team/members"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert '<div id="app">' in response.text
        assert response.headers["cache-control"] == "no-cache"
    assert (await client.get("/healthz")).headers["content-type"].startswith("application/json")
    for path in ("/webhooks/stripe", "/dev/token", "/invoices/nope/pdf", "/assets/x.js", "/x.png"):
        response = await client.get(path)
        assert response.status_code in (400, 401, 403, 404, 405), path
        assert '<div id="app">' not in response.text, path
    # Served by its own route (when it exists), never by the console.
    assert '<div id="app">' not in (await client.get("/metrics")).text


async def test_pages_load_nothing_from_another_origin(client: httpx.AsyncClient) -> None:
    ide = await client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200
    assert 'id="graphiql"' in ide.text
    for page in (ide.text, (await client.get("/")).text, (await client.get("/widget.html")).text):
        urls = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert urls
        for url in urls:
            assert url.startswith(("/", "data:")), url
            assert not url.startswith("//"), url
    for url in re.findall(r'(?:src|href)="(/assets/[^"]+)"', ide.text):
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert "immutable" in asset.headers["cache-control"]
        assert "unpkg.com" not in asset.text
        assert "cdn.jsdelivr" not in asset.text
