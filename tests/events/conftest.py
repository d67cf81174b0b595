"""Fixtures of the websocket tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api
from tests.support.subscriptions import LiveServer, http_api


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[Api]:
    """A client of the module's live server, over real HTTP."""
    api = http_api(server.http_url)
    yield api
    await api.http.aclose()
