"""`creditline audit`: clean after real traffic, and finds each planted discrepancy."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IntegrityError

from app.billing.ledger_audit import audit
from app.config import Settings
from app.credits.models import (
    CreditAccount,
    CreditGrant,
    InvoicedPeriod,
    LedgerEntry,
    LedgerKind,
    UsageRecord,
)
from app.kit import clock
from tests.support.api import JWT_SECRET, Actor, Api, sign_up
from tests.support.billing import grant, set_limit, use


async def _traffic(api: Api, admin: Actor, operator: Actor) -> None:
    """Grants of every kind, one expiring, usage into the invoiced tier, a replay."""
    clock.freeze(datetime(2026, 3, 10, 12, tzinfo=UTC))
    await grant(api, operator, admin.team_id, "5.00", "FREE", expires_at="2026-03-20T00:00:00Z")
    await grant(api, operator, admin.team_id, "3.00", "PROMOTIONAL")
    await grant(api, operator, admin.team_id, "2.00", "PREPAID")
    await set_limit(admin.team_id, "50.00")
    for i in range(4):
        assert (await use(api, operator, admin.team_id, "2.50", f"k-{i}"))["errors"] == []
    assert (await use(api, operator, admin.team_id, "2.50", "k-0"))["errors"] == []
    assert (await use(api, operator, admin.team_id, "1.25", "k-4"))["usage"]["invoiced"] == "1.25"


async def test_clean_after_traffic(api: Api, admin: Actor, operator: Actor) -> None:
    await _traffic(api, admin, operator)
    assert await audit() == []


async def test_an_expired_grant_not_yet_swept_is_not_a_discrepancy(
    api: Api, admin: Actor, operator: Actor
) -> None:
    clock.freeze(datetime(2026, 3, 10, 12, tzinfo=UTC))
    await grant(api, operator, admin.team_id, "5.00", "FREE", expires_at="2026-03-11T00:00:00Z")
    await grant(api, operator, admin.team_id, "1.00", "PREPAID")
    clock.advance(timedelta(days=3))
    # The cached balance still counts the expired grant until a locked write sweeps it.
    assert await audit() == []
    assert (await use(api, operator, admin.team_id, "0.50", "after-expiry"))["errors"] == []
    assert await audit() == []


async def test_finds_a_grant_whose_remaining_disagrees_with_its_ledger(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await _traffic(api, admin, operator)
    team = uuid.UUID(admin.team_id)
    prepaid = await CreditGrant.get(team_id=team, kind="PREPAID")
    # A cent appears from nowhere: the grant and the cache agree, the ledger does not.
    await CreditGrant.filter(id=prepaid.id).update(remaining=prepaid.remaining + 1_000_000)
    await CreditAccount.filter(team_id=team).update(prepaid=prepaid.remaining + 1_000_000)
    found = await audit()
    assert [(d.check, d.subject, d.team_id) for d in found] == [
        ("grant-ledger", f"grant {prepaid.id}", admin.team_id)
    ]
    assert "expected 0.00, found 0.01 remaining" in str(found[0])


async def test_finds_a_negative_remaining_and_a_stale_cached_balance(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await _traffic(api, admin, operator)
    team = uuid.UUID(admin.team_id)
    promo = await CreditGrant.get(team_id=team, kind="PROMOTIONAL")
    await LedgerEntry.create(
        team_id=team,
        grant_id=promo.id,
        kind=LedgerKind.WITHDRAWAL,
        amount=-100,
        created_at=clock.now(),
    )
    await CreditGrant.filter(id=promo.id).update(remaining=-100)
    await CreditAccount.filter(team_id=team).update(free=7)
    checks = {(d.check, d.subject) for d in await audit()}
    assert checks == {
        ("negative-remaining", f"grant {promo.id}"),
        ("account-balance", "cached free balance"),
    }


async def test_finds_usage_whose_parts_or_draws_disagree(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await _traffic(api, admin, operator)
    record = await UsageRecord.get(idempotency_key="k-1")
    await UsageRecord.filter(id=record.id).update(from_free=record.from_free + 1)
    checks = sorted((d.check, d.subject) for d in await audit())
    assert checks == [
        ("usage-draws", f"usage {record.id} free part"),
        ("usage-parts", f"usage {record.id}"),
    ]


async def test_finds_an_invoiced_period_that_disagrees_with_usage(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await _traffic(api, admin, operator)
    await InvoicedPeriod.filter(period="2026-03").update(amount=1)
    (found,) = await audit()
    assert (found.check, found.team_id) == ("invoiced-period", admin.team_id)
    assert "expected 1.25 (sum of usage), found 0.00000001" in str(found)


async def test_finds_a_ledger_entry_deleted_behind_its_back(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await _traffic(api, admin, operator)
    entry = await LedgerEntry.filter(kind=LedgerKind.USAGE).order_by("id").first()
    assert entry is not None
    await LedgerEntry.filter(id=entry.id).delete()
    checks = {d.check for d in await audit()}
    assert checks == {"grant-ledger", "usage-draws"}


async def test_finds_ledger_links_the_database_does_not_check(
    api: Api, admin: Actor, operator: Actor
) -> None:
    """On PostgreSQL a ledger entry's usage link carries no constraint (the usage path's
    inserts skip that check) and its team is checked only through the composite key to
    its grant (team_id, grant_id); SQLite has no team check. The audit is what finds a
    wrong or dangling link the database let through."""
    await _traffic(api, admin, operator)
    other = await sign_up(api, "other@example.com")
    first, second = await LedgerEntry.filter(kind=LedgerKind.USAGE).order_by("id").limit(2)
    postgres = LedgerEntry._meta.db.capabilities.dialect == "postgres"
    if postgres:  # the grant is the admin's team's: (other team, grant) exists nowhere
        with pytest.raises(IntegrityError):
            await LedgerEntry.filter(id=first.id).update(team_id=uuid.UUID(other.team_id))
    else:
        await LedgerEntry.filter(id=first.id).update(team_id=uuid.UUID(other.team_id))
        assert {d.check for d in await audit()} == {"ledger-team"}
        await LedgerEntry.filter(id=first.id).update(team_id=uuid.UUID(admin.team_id))
    assert await audit() == []
    dangling = uuid.uuid4()
    if postgres:
        await LedgerEntry.filter(id=second.id).update(usage_id=dangling)
        checks = {(d.check, d.subject) for d in await audit()}
        assert ("orphan-usage-draw", f"usage {dangling}") in checks
        assert "usage-draws" in {check for check, _ in checks}  # its record lost a draw
    else:  # SQLite keeps every constraint (dropping one there means rebuilding the table)
        with pytest.raises(IntegrityError):
            await LedgerEntry.filter(id=second.id).update(usage_id=dangling)


async def run_audit_command(env: dict[str, str]) -> tuple[int | None, str]:
    """`python -m app audit` in a subprocess: its exit code and everything it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "audit",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, stdout.decode() + stderr.decode()


async def test_the_command_exits_non_zero_listing_the_discrepancy(
    database: Settings, admin: Actor
) -> None:
    await CreditAccount.filter(team_id=uuid.UUID(admin.team_id)).update(prepaid=42)
    env = {
        **os.environ,
        "DATABASE_URL": database.database_url,
        "AUTH_JWT_SECRET": JWT_SECRET,
        "ENVIRONMENT": "test",
    }
    returncode, out = await run_audit_command(env)
    assert returncode == 1, out
    assert "1 discrepancies:" in out
    assert f"[account-balance] team {admin.team_id} cached prepaid balance" in out
    assert "expected 0.00, found 0.00000042" in out


async def test_the_command_exits_zero_when_clean(database: Settings, admin: Actor) -> None:
    env = {**os.environ, "DATABASE_URL": database.database_url, "ENVIRONMENT": "test"}
    returncode, out = await run_audit_command(env)
    assert returncode == 0, out
    assert "audit clean" in out
