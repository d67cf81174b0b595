"""Fixtures of the payments tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.config import Settings
from tests.support.payments import RecordedAch, recorded_ach


@pytest.fixture
async def ach(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RecordedAch]:
    """The process's gateway answers payment-method and payment-intent calls from recordings."""
    async with recorded_ach(settings, monkeypatch) as recorded:
        yield recorded
