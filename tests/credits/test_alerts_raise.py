"""raise_alert: once per crossing per month, decided by a unique key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.credits import alerts
from app.credits.models import AlertKind, BillingAlert
from app.events.commit import atomic
from app.kit import clock
from tests.support.api import Api, sign_up


async def _raise(team_id: uuid.UUID, kind: AlertKind, **kwargs: str) -> BillingAlert | None:
    async with atomic() as tx:  # a new alert is published after the commit
        alert = await alerts.raise_alert(tx.conn, team_id, kind, "message", **kwargs)
    return alert


async def test_once_per_month_then_again_next_month(api: Api) -> None:
    team_id = uuid.UUID((await sign_up(api)).team_id)
    clock.freeze(datetime(2026, 3, 31, 23, 0, tzinfo=UTC))
    first = await _raise(team_id, AlertKind.PAYMENT_FAILED)
    assert first is not None
    assert first.period == "2026-03"
    assert await _raise(team_id, AlertKind.PAYMENT_FAILED) is None
    # Another kind, or an explicit other period, is another alert.
    assert await _raise(team_id, AlertKind.CREDITS_LOW) is not None
    assert await _raise(team_id, AlertKind.PAYMENT_FAILED, period="2026-02") is not None
    clock.advance(timedelta(hours=2))
    assert await _raise(team_id, AlertKind.PAYMENT_FAILED) is not None
    assert await BillingAlert.filter(team_id=team_id, kind=AlertKind.PAYMENT_FAILED).count() == 3


async def test_a_key_names_one_crossing_within_the_month(api: Api) -> None:
    team_id = uuid.UUID((await sign_up(api)).team_id)
    assert await _raise(team_id, AlertKind.CREDITS_LOW, key="1") is not None
    assert await _raise(team_id, AlertKind.CREDITS_LOW, key="1") is None
    assert await _raise(team_id, AlertKind.CREDITS_LOW, key="2") is not None


async def test_a_duplicate_does_not_abort_the_callers_transaction(api: Api) -> None:
    team_id = uuid.UUID((await sign_up(api)).team_id)
    await _raise(team_id, AlertKind.PAYMENT_FAILED, period="2026-01")
    async with atomic() as tx:
        conn = tx.conn
        assert (
            await alerts.raise_alert(conn, team_id, AlertKind.PAYMENT_FAILED, "x", period="2026-01")
            is None
        )
        # The transaction is still usable after the ignored conflict.
        again = await alerts.raise_alert(conn, team_id, AlertKind.CREDITS_LOW, "y")
    assert again is not None
    assert await BillingAlert.filter(team_id=team_id).count() == 2


async def test_concurrent_raises_store_one(api: Api) -> None:
    team_id = uuid.UUID((await sign_up(api)).team_id)
    results = await asyncio.gather(
        *(_raise(team_id, AlertKind.PAYMENT_FAILED, period="2026-05") for _ in range(20))
    )
    assert sum(r is not None for r in results) == 1
    assert await BillingAlert.filter(team_id=team_id).count() == 1


async def test_bad_period_is_refused(api: Api) -> None:
    team_id = uuid.UUID((await sign_up(api)).team_id)
    async with atomic() as tx:
        with pytest.raises(ValueError, match="YYYY-MM"):
            await alerts.raise_alert(
                tx.conn, team_id, AlertKind.PAYMENT_FAILED, "x", period="2026-13"
            )
