"""Billing alerts: each fires once per crossing per month, is listed newest first and pushed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from app.billing import auto_top_up, sweeper
from app.config import Settings
from app.credits import alerts
from app.credits import service as credits_service
from app.credits.models import AlertKind, BillingAlert, CreditAccount
from app.events.commit import atomic
from app.graphql.context import Context
from app.graphql.schema import schema
from app.kit import clock
from app.notifications import settings as notification_settings
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import set_limit
from tests.support.credits import give, units, use
from tests.support.subscriptions import listening

ALERTS = """query($t: ID!, $n: Int) { team(id: $t) { alerts(first: $n) { id kind message createdAt }
  } }"""
SUBSCRIBE = "subscription($t: ID!) { billingAlerts(teamId: $t) { id kind message createdAt } }"


async def kinds(team_id: uuid.UUID) -> list[str]:
    """Alert kinds, oldest first."""
    rows = await BillingAlert.filter(team_id=team_id).order_by("created_at", "id")
    return [str(r.kind) for r in rows]


async def set_threshold(team_id: uuid.UUID, threshold: str) -> None:
    """A threshold without auto top-up (no card needed): the CREDITS_LOW alert alone."""
    await auto_top_up.configure(
        team_id,
        enabled=False,
        threshold=units(threshold),
        amount=units("25"),
        monthly_limit=units("100"),
    )


async def team(api: Api) -> tuple[Actor, uuid.UUID]:
    actor = await sign_up(api)
    return actor, uuid.UUID(actor.team_id)


async def test_invoiced_80_and_100_fire_once_each_however_many_events_cross(api: Api) -> None:
    _, team_id = await team(api)
    await set_limit(str(team_id), "100.00")
    accepted = await asyncio.gather(*(use(team_id, "2.50") for _ in range(50)))
    assert sum(accepted) == 40  # 100.00 of headroom, then INVOICED_LIMIT_REACHED
    assert sorted(await kinds(team_id)) == ["INVOICED_LIMIT_100", "INVOICED_LIMIT_80"]
    # More refused usage does not raise them again.
    for _ in range(3):
        assert not await use(team_id, "1.00")
    assert len(await kinds(team_id)) == 2


async def test_invoiced_alerts_once_per_limit_and_month(api: Api) -> None:
    _, team_id = await team(api)
    clock.freeze(datetime(2026, 8, 20, tzinfo=UTC))
    await set_limit(str(team_id), "10.00")
    assert await use(team_id, "7.99")
    assert await kinds(team_id) == []  # 79.9%
    assert await use(team_id, "0.01")
    assert await kinds(team_id) == ["INVOICED_LIMIT_80"]  # exactly 80%
    # A raised limit re-arms the thresholds: 16.00 of 20.00 is a new 80% crossing.
    await set_limit(str(team_id), "20.00")
    assert await use(team_id, "8.00")
    assert await kinds(team_id) == ["INVOICED_LIMIT_80", "INVOICED_LIMIT_80"]
    messages = {a.message for a in await BillingAlert.filter(team_id=team_id)}
    assert any(
        "August 2026 reached 80% of the $20.00 monthly spending limit ($16.00 so far)" in m
        for m in messages
    ), messages
    # Back to the old limit and over it again: that limit's crossing was told this month.
    await set_limit(str(team_id), "10.00")
    await set_limit(str(team_id), "20.00")
    assert await use(team_id, "0.50")
    assert len(await kinds(team_id)) == 2
    clock.freeze(datetime(2026, 9, 1, 0, 0, 1, tzinfo=UTC))
    assert await use(team_id, "20.00")
    rows = await BillingAlert.filter(team_id=team_id).order_by("created_at")
    assert sorted((a.period, str(a.kind)) for a in rows) == [
        ("2026-08", "INVOICED_LIMIT_80"),
        ("2026-08", "INVOICED_LIMIT_80"),
        ("2026-09", "INVOICED_LIMIT_100"),
        ("2026-09", "INVOICED_LIMIT_80"),
    ]


async def test_raising_the_limit_rearms_both_alerts_naming_the_new_limit(api: Api) -> None:
    """The reported case: limit 10, both fire; raise to 30 and spend to 30: both again."""
    _, team_id = await team(api)
    clock.freeze(datetime(2026, 8, 10, tzinfo=UTC))
    await set_limit(str(team_id), "10.00")
    assert await use(team_id, "10.00")
    assert sorted(await kinds(team_id)) == ["INVOICED_LIMIT_100", "INVOICED_LIMIT_80"]
    await set_limit(str(team_id), "30.00")
    assert await use(team_id, "20.00")
    rows = await BillingAlert.filter(team_id=team_id)
    named = sorted((str(a.kind), a.message.split(" of the ")[1]) for a in rows)
    assert named == [
        ("INVOICED_LIMIT_100", "$10.00 monthly spending limit ($10.00 so far)."),
        ("INVOICED_LIMIT_100", "$30.00 monthly spending limit ($30.00 so far)."),
        ("INVOICED_LIMIT_80", "$10.00 monthly spending limit ($10.00 so far)."),
        ("INVOICED_LIMIT_80", "$30.00 monthly spending limit ($30.00 so far)."),
    ]
    assert not await use(team_id, "0.01")  # at the limit: refused, no alert again
    assert len(await kinds(team_id)) == 4


async def test_thresholds_follow_the_team_settings(api: Api) -> None:
    _, team_id = await team(api)
    await set_limit(str(team_id), "100.00")
    await notification_settings.update(team_id, thresholds=[50])
    assert await use(team_id, "49.99")
    assert await kinds(team_id) == []
    assert await use(team_id, "0.01")
    assert await kinds(team_id) == ["INVOICED_LIMIT_80"]  # the warning kind, at 50%
    (alert,) = await BillingAlert.filter(team_id=team_id)
    assert "reached 50% of the $100.00 monthly spending limit" in alert.message
    assert await use(team_id, "50.00")
    assert len(await kinds(team_id)) == 1  # 100% is not among this team's thresholds


async def test_usage_dated_last_month_alerts_for_last_month(api: Api) -> None:
    _, team_id = await team(api)
    clock.freeze(datetime(2026, 10, 2, tzinfo=UTC))
    await set_limit(str(team_id), "10.00")
    request = credits_service.UsageRequest(
        team_id=team_id,
        amount=units("9.00"),
        idempotency_key="late",
        occurred_at=datetime(2026, 9, 30, 23, 0, tzinfo=UTC),
    )
    (result,) = await credits_service.record_usage([request])
    assert result.record is not None
    (alert,) = await BillingAlert.filter(team_id=team_id)
    assert (alert.kind, alert.period) == (AlertKind.INVOICED_LIMIT_80, "2026-09")


async def test_credits_low_once_per_crossing(api: Api) -> None:
    _, team_id = await team(api)
    await give(team_id, "20.00")
    await set_threshold(team_id, "10.00")
    assert await use(team_id, "5.00")  # 15: above
    assert await kinds(team_id) == []
    assert await use(team_id, "6.00")  # 9: crossed
    assert await kinds(team_id) == ["CREDITS_LOW"]
    for _ in range(5):
        assert await use(team_id, "1.00")  # still below: the same crossing
    assert await kinds(team_id) == ["CREDITS_LOW"]
    await give(team_id, "10.00")  # 14: above again
    assert await use(team_id, "5.00")  # 9: a new crossing
    assert await kinds(team_id) == ["CREDITS_LOW", "CREDITS_LOW"]


async def test_credits_low_needs_a_threshold_and_costs_nothing_without_one(api: Api) -> None:
    _, team_id = await team(api)
    await give(team_id, "20.00")
    assert await use(team_id, "19.00")
    assert await kinds(team_id) == []
    account = await CreditAccount.get(team_id=team_id)
    assert account.auto_top_up_threshold is None


async def test_concurrent_usage_crossing_the_threshold_alerts_once(api: Api) -> None:
    _, team_id = await team(api)
    await give(team_id, "20.00")
    await set_threshold(team_id, "10.00")
    accepted = await asyncio.gather(*(use(team_id, "0.25") for _ in range(50)))
    assert all(accepted)
    assert await kinds(team_id) == ["CREDITS_LOW"]


async def test_expiry_below_the_threshold_alerts(api: Api) -> None:
    _, team_id = await team(api)
    clock.freeze(datetime(2026, 5, 5, tzinfo=UTC))
    await give(team_id, "15.00", expires_at=clock.now() + timedelta(hours=1))
    await give(team_id, "5.00")
    await set_threshold(team_id, "10.00")
    clock.advance(timedelta(hours=2))
    assert await sweeper.sweep_once() == 1
    assert await kinds(team_id) == ["CREDITS_LOW"]


async def test_credits_exhausted_once_when_credits_reach_zero_without_headroom(api: Api) -> None:
    _, team_id = await team(api)
    await give(team_id, "5.00")
    assert await use(team_id, "3.00")
    assert await kinds(team_id) == []
    assert await use(team_id, "2.00")  # exactly zero, limit 0
    assert await kinds(team_id) == ["CREDITS_EXHAUSTED"]
    for _ in range(3):
        assert not await use(team_id, "1.00")  # refused: no new alert
    assert await kinds(team_id) == ["CREDITS_EXHAUSTED"]
    await give(team_id, "1.00")
    assert await use(team_id, "1.00")  # refilled, then out again: a new crossing
    assert await kinds(team_id) == ["CREDITS_EXHAUSTED", "CREDITS_EXHAUSTED"]


async def test_no_credits_exhausted_while_invoiced_headroom_remains(api: Api) -> None:
    _, team_id = await team(api)
    await give(team_id, "5.00")
    await set_limit(str(team_id), "10.00")
    assert await use(team_id, "5.00")
    assert await kinds(team_id) == []
    assert await use(team_id, "10.00")  # the invoiced limit is the alert now
    assert sorted(await kinds(team_id)) == ["INVOICED_LIMIT_100", "INVOICED_LIMIT_80"]


async def test_team_alerts_newest_first_and_visible_to_members(api: Api) -> None:
    admin, team_id = await team(api)
    clock.freeze(datetime(2026, 3, 3, tzinfo=UTC))
    for kind in (AlertKind.CREDITS_LOW, AlertKind.PAYMENT_FAILED, AlertKind.AUTO_TOP_UP_FAILED):
        clock.advance(timedelta(minutes=1))
        async with atomic() as tx:
            await alerts.raise_alert(tx.conn, team_id, kind, f"{kind} happened")
    data = await api.ok(ALERTS, {"t": str(team_id), "n": 2}, admin.token)
    listed = data["team"]["alerts"]
    assert [a["kind"] for a in listed] == ["AUTO_TOP_UP_FAILED", "PAYMENT_FAILED"]
    assert listed[0]["message"] == "AUTO_TOP_UP_FAILED happened"
    everything = await api.ok(ALERTS, {"t": str(team_id)}, admin.token)
    assert len(everything["team"]["alerts"]) == 3
    member = await sign_up(api)
    await join(api, admin, member, str(team_id))
    seen = await api.ok(ALERTS, {"t": str(team_id)}, member.token)
    assert len(seen["team"]["alerts"]) == 3
    stranger = await sign_up(api)
    assert await api.error_code(ALERTS, {"t": str(team_id)}, stranger.token) == "NOT_FOUND"
    assert await api.error_code(ALERTS, {"t": str(team_id), "n": -1}, admin.token) == (
        "INVALID_INPUT"
    )


async def test_subscription_pushes_every_alert_even_in_a_burst(
    api: Api, database: Settings
) -> None:
    admin, team_id = await team(api)
    context = Context(settings=database, request=None, authorization=f"Bearer {admin.token}")
    stream = await schema.subscribe(
        SUBSCRIBE, variable_values={"t": str(team_id)}, context_value=context
    )
    assert hasattr(stream, "__anext__"), stream
    first = asyncio.ensure_future(stream.__anext__())
    await listening(alerts.alerts_channel(team_id))
    # Three alerts published back to back (by one transaction's after-commit work): the
    # broker keeps only the newest notice, the stream still delivers all three, in order.
    raised = []
    async with atomic() as tx:
        for kind in (AlertKind.CREDITS_LOW, AlertKind.CREDITS_EXHAUSTED, AlertKind.PAYMENT_FAILED):
            clock.advance(timedelta(seconds=1))
            raised.append(await alerts.raise_alert(tx.conn, team_id, kind, str(kind)))
    results = [await asyncio.wait_for(first, 10)]
    for _ in range(2):
        results.append(await asyncio.wait_for(stream.__anext__(), 10))
    assert [r.errors for r in results] == [None, None, None]
    got = [r.data["billingAlerts"] for r in results if r.data]
    assert [a["kind"] for a in got] == ["CREDITS_LOW", "CREDITS_EXHAUSTED", "PAYMENT_FAILED"]
    assert [a["id"] for a in got] == [str(a.id) for a in raised if a]
    # A usage crossing is pushed too.
    await set_limit(str(team_id), "1.00")
    assert await use(team_id, "1.00")
    pushed = [await asyncio.wait_for(stream.__anext__(), 10) for _ in range(2)]
    assert sorted(p.data["billingAlerts"]["kind"] for p in pushed if p.data) == [
        "INVOICED_LIMIT_100",
        "INVOICED_LIMIT_80",
    ]
    await stream.aclose()


async def test_subscription_to_another_team_is_refused(api: Api, database: Settings) -> None:
    admin, _ = await team(api)
    _, other = await team(api)
    context = Context(settings=database, request=None, authorization=f"Bearer {admin.token}")
    result = await schema.subscribe(
        SUBSCRIBE, variable_values={"t": str(other)}, context_value=context
    )
    if hasattr(result, "__anext__"):
        result = await result.__anext__()
    assert result.errors
    assert result.errors[0].extensions == {"code": "NOT_FOUND"}
