"""Many requests at once against one team: exact totals, one debit per idempotency key.

On PostgreSQL these run truly concurrently on many pooled connections; on SQLite the
writers serialise, and the totals must be the same.
"""

from __future__ import annotations

import asyncio
import uuid

from app.credits.models import CreditAccount, CreditGrant, LedgerEntry, UsageRecord
from tests.support.api import Actor, Api
from tests.support.billing import credits, grant, use


async def _ledger_matches_grants(team_id: str) -> None:
    team = uuid.UUID(team_id)
    for g in await CreditGrant.filter(team_id=team):
        entries = await LedgerEntry.filter(grant_id=g.id).values_list("amount", flat=True)
        assert sum(entries) == g.remaining, g.id
        assert g.remaining >= 0
    account = await CreditAccount.get(team_id=team)
    live = await CreditGrant.filter(team_id=team).values_list("remaining", flat=True)
    assert account.free + account.promotional + account.prepaid == sum(live)


async def test_200_concurrent_usages_against_exactly_50_dollars(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "20.00", "FREE")
    await grant(api, operator, admin.team_id, "30.00", "PREPAID")
    results = await asyncio.gather(
        *(use(api, operator, admin.team_id, "1.00", f"c-{i}") for i in range(200))
    )
    accepted = [r for r in results if r["usage"]]
    codes = [r["errors"][0]["code"] for r in results if not r["usage"]]
    assert len(accepted) == 50
    assert codes == ["CREDITS_EXHAUSTED"] * 150
    assert (await credits(api, admin))["total"] == "0.00"
    assert await UsageRecord.filter(team_id=uuid.UUID(admin.team_id)).count() == 50
    await _ledger_matches_grants(admin.team_id)


async def test_20_concurrent_calls_with_one_key_debit_once(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "10.00")
    results = await asyncio.gather(
        *(use(api, operator, admin.team_id, "1.25", "one-key") for _ in range(20))
    )
    ids = {r["usage"]["id"] for r in results}
    assert len(ids) == 1
    assert all(r["errors"] == [] for r in results)
    assert (await credits(api, admin))["total"] == "8.75"
    await _ledger_matches_grants(admin.team_id)


async def test_concurrent_usage_and_grants_keep_the_ledger_exact(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    work = [use(api, operator, admin.team_id, "0.01", f"u-{i}") for i in range(100)]
    work += [grant(api, operator, admin.team_id, "0.10", "PREPAID") for _ in range(10)]
    results = await asyncio.gather(*work)
    accepted = sum(1 for r in results[:100] if r["usage"])
    assert accepted == 100
    assert (await credits(api, admin))["total"] == "1.00"  # 1.00 + 10 * 0.10 - 100 * 0.01
    await _ledger_matches_grants(admin.team_id)
