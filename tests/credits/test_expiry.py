"""Expiring grants: an EXPIRY ledger entry, lazily on the next touch or by the sweeper."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tortoise.functions import Sum

from app.billing import sweeper
from app.config import Settings
from app.credits import promo
from app.credits import service as credits_service
from app.credits.models import (
    AlertKind,
    BillingAlert,
    CreditAccount,
    CreditGrant,
    LedgerEntry,
    LedgerKind,
)
from app.events import bus
from app.kit import clock
from tests.support.api import Api, sign_up
from tests.support.credits import give, units

START = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)


async def new_team(api: Api) -> uuid.UUID:
    return uuid.UUID((await sign_up(api)).team_id)


async def assert_ledger_sums(team_id: uuid.UUID) -> None:
    """Each grant's remaining = its ledger entries' sum; the cached balances = live grants."""
    for row in await CreditGrant.filter(team_id=team_id):
        summed = (
            await LedgerEntry.filter(grant_id=row.id)
            .annotate(total=Sum("amount"))
            .first()
            .values_list("total", flat=True)
        )
        assert int(summed or 0) == row.remaining, row.id
    account = await CreditAccount.get(team_id=team_id)
    view = await credits_service.credits_view(team_id)
    assert (account.free, account.promotional, account.prepaid) == (
        view.free,
        view.promotional,
        view.prepaid,
    )


async def expiries(team_id: uuid.UUID) -> list[int]:
    rows = await LedgerEntry.filter(team_id=team_id, kind=LedgerKind.EXPIRY).order_by("id")
    return [r.amount for r in rows]


async def test_the_sweeper_writes_the_expiry_and_the_ledger_still_sums(api: Api) -> None:
    team_id = await new_team(api)
    clock.freeze(START)
    await give(team_id, "10.00", expires_at=START + timedelta(hours=1))
    await give(team_id, "5.00")
    request = credits_service.UsageRequest(team_id, units("2.00"), "k1")
    await credits_service.record_usage([request])  # from the expiring grant first
    clock.advance(timedelta(hours=1))
    # Reads stop counting it at the expiry instant, before anything is written.
    assert (await credits_service.credits_view(team_id)).total == units("5.00")
    assert await expiries(team_id) == []
    assert await sweeper.sweep_once() == 1
    assert await expiries(team_id) == [-units("8.00")]
    account = await CreditAccount.get(team_id=team_id)
    assert account.free == units("5.00")
    assert account.next_expiry_at is None
    await assert_ledger_sums(team_id)
    assert await sweeper.sweep_once() == 0  # written once
    assert await expiries(team_id) == [-units("8.00")]


async def test_expiry_is_written_lazily_when_the_team_is_next_touched(api: Api) -> None:
    team_id = await new_team(api)
    clock.freeze(START)
    await give(team_id, "3.00", expires_at=START + timedelta(minutes=30))
    await give(team_id, "4.00")
    clock.advance(timedelta(minutes=31))
    request = credits_service.UsageRequest(team_id, units("1.00"), "after-expiry")
    (result,) = await credits_service.record_usage([request])
    assert result.record is not None
    assert result.record.from_free == units("1.00")
    assert await expiries(team_id) == [-units("3.00")]
    assert (await credits_service.credits_view(team_id)).total == units("3.00")
    await assert_ledger_sums(team_id)
    assert await sweeper.sweep_once() == 0


async def test_expired_credits_cannot_pay(api: Api) -> None:
    team_id = await new_team(api)
    clock.freeze(START)
    await give(team_id, "3.00", expires_at=START + timedelta(minutes=30))
    clock.advance(timedelta(minutes=30))  # expiry instant: no longer counts
    request = credits_service.UsageRequest(team_id, units("0.01"), "late")
    (result,) = await credits_service.record_usage([request])
    assert result.error is not None
    assert result.error.code == "CREDITS_EXHAUSTED"
    # The refused event stores nothing, but touching the team wrote the expiry, and
    # credits reaching zero that way is an exhaustion like any other.
    assert await expiries(team_id) == [-units("3.00")]
    assert await sweeper.sweep_once() == 0
    await assert_ledger_sums(team_id)
    (alert,) = await BillingAlert.filter(team_id=team_id)
    assert alert.kind is AlertKind.CREDITS_EXHAUSTED


async def test_subscribers_see_the_drop(api: Api) -> None:
    team_id = await new_team(api)
    clock.freeze(START)
    await give(team_id, "6.00", expires_at=START + timedelta(seconds=5))
    async with bus.broker.subscribe(bus.credits_channel(team_id)) as queue:
        assert queue.empty()
        clock.advance(timedelta(seconds=5))
        await sweeper.sweep_once()
        notice = await asyncio.wait_for(queue.get(), 5)
    assert str(team_id) in notice


async def test_promo_credits_expire_after_their_validity(api: Api) -> None:
    team_id = await new_team(api)
    clock.freeze(START)
    await promo.create_promo_code("SHORT", units("2.50"), credit_validity_days=1)
    redemption = await promo.redeem_promo_code(team_id, "short")
    assert redemption.grant.expires_at == START + timedelta(days=1)
    clock.advance(timedelta(hours=23))
    assert await sweeper.sweep_once() == 0
    clock.advance(timedelta(hours=1))
    assert await sweeper.sweep_once() == 1
    view = await credits_service.credits_view(team_id)
    assert view.promotional == 0
    assert await expiries(team_id) == [-units("2.50")]
    await assert_ledger_sums(team_id)


async def test_the_sweeper_wakes_at_the_next_expiry(api: Api) -> None:
    team_id = await new_team(api)
    clock.freeze(START)
    assert await sweeper.next_wake(clock.now()) == sweeper.SWEEP_INTERVAL.total_seconds()
    await give(team_id, "1.00", expires_at=START + timedelta(seconds=7))
    wait = await sweeper.next_wake(clock.now())
    assert 7 <= wait < 8
    clock.advance(timedelta(seconds=10))
    assert 0 < await sweeper.next_wake(clock.now()) < 1  # overdue: at once


async def test_the_sweeper_runs_in_the_background_until_stopped(
    api: Api, database: Settings
) -> None:
    team_id = await new_team(api)
    await give(team_id, "1.00", expires_at=clock.now() + timedelta(milliseconds=300))
    task = sweeper.start_sweeper(database)
    try:
        for _ in range(300):
            if await expiries(team_id):
                break
            await asyncio.sleep(0.02)
    finally:
        await sweeper.stop_sweeper(task)
    assert task.cancelled()
    assert await expiries(team_id) == [-units("1.00")]
