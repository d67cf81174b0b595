"""Several closers at once, and late usage racing the close (truly concurrent on PostgreSQL;
on SQLite the writers serialise and the outcome must be the same)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from app.billing import collection
from app.credits import service as credits
from app.credits.models import InvoicedPeriod
from app.invoices.models import Invoice, InvoiceLine, InvoiceStatus
from app.kit import clock
from app.kit.errors import ErrorCode
from app.kit.money import parse
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import set_limit
from tests.support.invoices import NOV_1, OCT_20, card_on_file, count_charges, invoiced_usage


async def test_concurrent_closers_issue_one_invoice_per_team_with_gap_free_numbers(
    api: Api, operator: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    charges = count_charges(monkeypatch)
    clock.freeze(OCT_20)
    teams = [await sign_up(api, f"team-{i}@example.com") for i in range(4)]
    for index, team in enumerate(teams):
        await card_on_file(team, "pm_card_visa")
        await set_limit(team.team_id, "50.00")
        await invoiced_usage(api, operator, team, [(f"{index + 1}.005", "calls")])
    clock.freeze(NOV_1)

    reports = await asyncio.gather(*(collection.close_month("2026-10") for _ in range(6)))

    assert sum(r.issued for r in reports) == 4
    assert sum(r.already_issued for r in reports) == 6 * 4 - 4
    assert sum(r.errors for r in reports) == 0
    rows = await Invoice.all().order_by("number")
    assert sorted(str(r.team_id) for r in rows) == sorted(t.team_id for t in teams)
    assert [r.number for r in rows] == [f"CL-2026-00000{i}" for i in range(1, 5)]
    assert all(r.status is InvoiceStatus.PAID for r in rows)
    # Each invoice charged once: one attempt, with the key of its first attempt.
    assert sorted(charges) == sorted(f"invoice:{r.id}:charge:1" for r in rows)
    assert sorted(r.total_cents for r in rows) == [101, 201, 301, 401]  # x.005 rounds up


async def test_late_usage_racing_the_close_is_either_invoiced_or_refused(
    api: Api, admin: Actor, operator: Actor
) -> None:
    clock.freeze(OCT_20)
    await card_on_file(admin, "pm_card_visa")
    await set_limit(admin.team_id, "1000.00")
    await invoiced_usage(api, operator, admin, [("1.00", "early")])
    clock.freeze(datetime(2026, 11, 1, 0, 1, tzinfo=UTC))
    team_id = uuid.UUID(admin.team_id)
    late_at = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)

    async def late(index: int) -> credits.UsageResult:
        request = credits.UsageRequest(
            team_id, parse("0.01"), f"late-{index}", "late", occurred_at=late_at
        )
        return (await credits.record_usage([request]))[0]

    outcome = await asyncio.gather(
        *(late(i) for i in range(10)),
        collection.close_month("2026-10"),
        *(late(i) for i in range(10, 20)),
    )
    results = [r for r in outcome if isinstance(r, credits.UsageResult)]
    accepted = [r for r in results if r.record is not None]
    refused = [r for r in results if r.error is not None]
    assert len(accepted) + len(refused) == 20
    assert all(r.error.code is ErrorCode.PERIOD_CLOSED for r in refused if r.error)

    invoice = await Invoice.get(team_id=team_id)
    lines = await InvoiceLine.filter(invoice_id=invoice.id)
    exact = sum(line.exact_units or 0 for line in lines)
    # Everything accepted for October is on the invoice; nothing landed after it was read.
    assert exact == parse("1.00") + len(accepted) * parse("0.01")
    row = await InvoicedPeriod.get(team_id=team_id, period="2026-10")
    assert row.amount == exact
    assert invoice.total_cents == 100 + len(accepted)
