"""Operations: /metrics behind METRICS_TOKEN, refusals logged as one line, browser headers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from app.config import Environment, Settings
from app.graphql import errors
from app.main import create_app
from tests.support.api import Actor, Api, sign_up


@asynccontextmanager
async def _client(settings: Settings, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=changes), manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_metrics_need_the_token_when_one_is_set(database: Settings) -> None:
    async with _client(database, metrics_token="s3cret-scrape") as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        assert "creditline_" not in wrong.text
        good = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert good.status_code == 200
        assert "creditline_http_responses_total" in good.text


async def test_metrics_are_closed_in_production_without_a_token(database: Settings) -> None:
    production = {"environment": Environment.PRODUCTION}
    async with _client(database, **production) as http:
        assert (await http.get("/metrics")).status_code == 404
    async with _client(database, **production, metrics_token="t0k") as http:
        assert (await http.get("/metrics")).status_code == 401
        ok = await http.get("/metrics", headers={"Authorization": "Bearer t0k"})
        assert ok.status_code == 200


async def test_development_keeps_metrics_open_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


async def test_expected_refusals_log_one_line_without_a_traceback(
    api: Api, admin: Actor, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = await sign_up(api, "stranger@example.com")
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        # Loggers are cached on first use: a fresh one sees the capturing configuration.
        monkeypatch.setattr(errors, "log", structlog.get_logger(errors.__name__))
        assert await api.error_code("{ viewer { id } }") == "UNAUTHENTICATED"
        query = "query($t: ID!) { team(id: $t) { id } }"
        assert await api.error_code(query, {"t": admin.team_id}, stranger.token) == "NOT_FOUND"
        limit = """mutation($t: ID!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: "0"}) {
          errors { code } } }"""
        member = await sign_up(api, "member@example.com")
        assert await api.error_code(limit, {"t": member.team_id}, stranger.token) == "NOT_FOUND"
        assert await api.error_code("{ nope }", token=admin.token) == "BAD_REQUEST"
    refused = [entry for entry in logs if entry["event"] == "graphql.refused"]
    assert [entry["code"] for entry in refused] == [
        "UNAUTHENTICATED",
        "NOT_FOUND",
        "NOT_FOUND",
        "BAD_REQUEST",
    ]
    assert all(entry["log_level"] == "info" and "exc_info" not in entry for entry in refused)
    # Strawberry's own logger (one record with a traceback per error) stays silent.
    assert [r for r in caplog.records if r.name == "strawberry.execution"] == []


async def test_responses_carry_the_browser_policy_headers(database: Settings) -> None:
    async with _client(database, cors_allow_origins=["https://app.example.com"]) as http:
        for path in ("/healthz", "/graphql", "/"):
            response = await http.get(path)
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["content-security-policy"] == (
                "frame-ancestors 'self' https://app.example.com"
            )
        refused = await http.post("/graphql", content="{}", headers={"Content-Type": "text/plain"})
        assert refused.status_code == 415
        assert refused.headers["x-content-type-options"] == "nosniff"
    async with _client(database) as http:
        only_self = (await http.get("/healthz")).headers["content-security-policy"]
        assert only_self == "frame-ancestors 'self'"
