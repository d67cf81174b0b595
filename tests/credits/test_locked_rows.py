"""The locked section on plain rows: what callers write is persisted, and every notice
(credits changed, alerts) goes out after the commit, never on a rollback."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict
from datetime import timedelta

import pytest

from app.credits import alerts, store
from app.credits import service as credits
from app.credits.models import (
    AlertKind,
    BillingAlert,
    CreditAccount,
    CreditGrant,
    CreditKind,
    LedgerEntry,
    LedgerKind,
)
from app.events import bus
from app.events.commit import atomic
from app.kit import clock
from tests.conftest import Actor, Api, sign_up


class _Rollback(Exception):
    pass


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch) -> list[list[uuid.UUID]]:
    """Each `bus.credits_changed_many` call (the collector's one publish per commit)."""
    calls: list[list[uuid.UUID]] = []
    original = bus.credits_changed_many

    async def spy(team_ids: Iterable[uuid.UUID]) -> None:
        ids = list(team_ids)
        calls.append(ids)
        await original(ids)

    monkeypatch.setattr(bus, "credits_changed_many", spy)
    return calls


async def test_every_column_a_caller_writes_is_flushed(api: Api, admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    async with atomic() as tx:
        locked = await credits.lock_account(team_id, tx.conn)
        account = locked.account
        assert isinstance(account, store.AccountRow)
        # What payments, invoices, auto top-up and programs write on `locked.account`.
        account.invoiced_limit = 12_300
        account.invoicing_suspended = True
        account.funding_seq += 5
        account.auto_top_up_enabled = True
        account.auto_top_up_threshold = 700
        account.auto_top_up_amount = 900
        account.auto_top_up_monthly_limit = 5_000
        account.auto_top_up_paused_reason = "declined"
        account.auto_top_up_pending = True
        await locked.flush()
        expected = asdict(account)
    stored = await CreditAccount.get(team_id=team_id)
    for name, value in expected.items():
        assert getattr(stored, name) == value, name


async def test_a_new_grant_is_inserted_as_the_row_says(api: Api, admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    before = await CreditAccount.get(team_id=team_id)
    expires_at = clock.now() + timedelta(days=3)
    async with atomic() as tx:
        locked = await credits.lock_account(team_id, tx.conn)
        grant = locked.add_grant(
            CreditKind.PROMOTIONAL, 250, description="welcome", expires_at=expires_at
        )
        locked.draw(grant, 50, LedgerKind.USAGE, None)  # inserted with its final remaining
        await locked.flush()
    stored = await CreditGrant.get(id=grant.id)
    assert isinstance(grant, store.GrantRow)
    for name, value in asdict(grant).items():
        assert getattr(stored, name) == value, name
    assert stored.remaining == 200
    entries = await LedgerEntry.filter(grant_id=grant.id).order_by("id")
    assert [(e.kind, e.amount) for e in entries] == [
        (LedgerKind.GRANT, 250),
        (LedgerKind.USAGE, -50),
    ]
    account = await CreditAccount.get(team_id=team_id)
    assert account.promotional == 200
    assert account.next_expiry_at == expires_at
    assert account.funding_seq == before.funding_seq + 1  # credits added: a new crossing


async def test_credits_are_announced_after_the_commit_only(
    api: Api, admin: Actor, announced: list[list[uuid.UUID]]
) -> None:
    team_id = uuid.UUID(admin.team_id)
    await credits.grant_credits(team_id, CreditKind.FREE, 100)
    assert announced == [[team_id]]

    async def grant_then_fail() -> None:
        async with atomic() as tx:
            locked = await credits.lock_account(team_id, tx.conn)
            locked.add_grant(CreditKind.FREE, 100)
            await locked.flush()
            tx.credits_changed(team_id)
            assert announced == [[team_id]]  # not yet: the transaction is open
            raise _Rollback

    with pytest.raises(_Rollback):
        await grant_then_fail()
    assert announced == [[team_id]]
    assert await CreditGrant.filter(team_id=team_id).count() == 1


async def test_one_usage_transaction_announces_its_teams_in_one_publish(
    api: Api, admin: Actor, announced: list[list[uuid.UUID]]
) -> None:
    other = await sign_up(api)
    teams = [uuid.UUID(admin.team_id), uuid.UUID(other.team_id)]
    for team_id in teams:
        await credits.grant_credits(team_id, CreditKind.FREE, 1_000)
    announced.clear()
    results = await credits.record_usage(
        [
            credits.UsageRequest(team_id=team_id, amount=10, idempotency_key=f"k{n}")
            for n, team_id in enumerate(teams + teams)
        ]
    )
    assert all(r.record is not None for r in results)
    assert len(announced) == 1
    assert sorted(announced[0]) == sorted(teams)


async def test_an_alert_is_published_after_the_commit_and_not_on_rollback(
    api: Api, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_id = uuid.UUID(admin.team_id)
    published: list[uuid.UUID] = []

    async def spy(raised: Iterable[BillingAlert | None]) -> None:
        published.extend(a.id for a in raised if a is not None)

    monkeypatch.setattr(alerts, "publish_alerts", spy)
    async with atomic() as tx:
        alert = await alerts.raise_alert(tx.conn, team_id, AlertKind.CREDITS_LOW, "low")
        assert alert is not None
        assert published == []
    assert published == [alert.id]

    async def raise_then_fail() -> None:
        async with atomic() as tx:
            await alerts.raise_alert(tx.conn, team_id, AlertKind.PAYMENT_FAILED, "failed")
            raise _Rollback

    with pytest.raises(_Rollback):
        await raise_then_fail()
    assert published == [alert.id]
    assert await BillingAlert.filter(team_id=team_id).count() == 1


async def test_raise_alert_outside_atomic_is_refused(api: Api, admin: Actor) -> None:
    with pytest.raises(RuntimeError, match="atomic"):
        await alerts.raise_alert(
            CreditAccount._meta.db, uuid.UUID(admin.team_id), AlertKind.CREDITS_LOW, "low"
        )
