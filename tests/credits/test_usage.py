"""The usage gate: the drawing order, exact to 1e-8, idempotent, all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from app.kit import clock
from tests.support.api import Actor, Api, sign_up
from tests.support.billing import LIMIT, USAGE, credits, grant, set_limit, use


async def test_waterfall_across_all_kinds_and_the_invoiced_tier(
    api: Api, admin: Actor, operator: Actor
) -> None:
    clock.freeze(datetime(2026, 3, 10, 12, tzinfo=UTC))
    t = admin.team_id
    prepaid_old = await grant(api, operator, t, "3.00", "PREPAID", description="wire 1")
    clock.advance(timedelta(minutes=1))
    prepaid_new = await grant(api, operator, t, "4.00", "PREPAID", description="wire 2")
    free_forever = await grant(api, operator, t, "1.00", "FREE")
    clock.advance(timedelta(minutes=1))
    promo_late = await grant(
        api, operator, t, "2.00", "PROMOTIONAL", expires_at="2026-05-01T00:00:00Z"
    )
    free_soon = await grant(api, operator, t, "1.50", "FREE", expires_at="2026-04-01T00:00:00Z")
    await set_limit(t, "5.00")

    state = await credits(api, admin)
    assert [g["id"] for g in state["grants"]] == [
        free_soon["id"],
        promo_late["id"],
        free_forever["id"],
        prepaid_old["id"],
        prepaid_new["id"],
    ]
    assert (state["total"], state["free"], state["promotional"], state["prepaid"]) == (
        "11.50",
        "2.50",
        "2.00",
        "7.00",
    )

    first = await use(api, operator, t, "2.00", "k1")
    assert first["usage"] | {"id": None, "occurredAt": None} == {
        "id": None,
        "occurredAt": None,
        "idempotencyKey": "k1",
        "amount": "2.00",
        "accepted": True,
        "fromFree": "1.50",
        "fromPromotional": "0.50",
        "fromPrepaid": "0.00",
        "invoiced": "0.00",
        "description": None,
    }
    second = await use(api, operator, t, "4.00", "k2", description="gpu")
    assert (second["usage"]["fromFree"], second["usage"]["fromPromotional"]) == ("1.00", "1.50")
    assert second["usage"]["fromPrepaid"] == "1.50"
    third = await use(api, operator, t, "8.00", "k3")
    assert (third["usage"]["fromPrepaid"], third["usage"]["invoiced"]) == ("5.50", "2.50")
    assert third["credits"] == {"total": "0.00"}

    state = await credits(api, admin)
    assert state["grants"] == []
    assert (state["invoicedThisMonth"], state["invoicedRemaining"], state["status"]) == (
        "2.50",
        "2.50",
        "ACTIVE",
    )
    # An event that does not fit whole is rejected whole.
    over = await use(api, operator, t, "2.50000001", "k4")
    assert over["usage"] is None
    assert over["errors"][0]["code"] == "INVOICED_LIMIT_REACHED"
    exact = await use(api, operator, t, "2.50", "k5")
    assert exact["usage"]["invoiced"] == "2.50"
    state = await credits(api, admin)
    assert (state["invoicedRemaining"], state["status"]) == ("0.00", "INVOICED_LIMIT_REACHED")
    # Raising the limit lets the next one through.
    await set_limit(t, "6.00")
    assert (await use(api, operator, t, "1.00", "k4"))["usage"]["invoiced"] == "1.00"


async def test_limit_zero_rejects_with_credits_exhausted(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    rejected = await use(api, operator, admin.team_id, "1.01", "a")
    assert rejected["errors"] == [
        {
            "code": "CREDITS_EXHAUSTED",
            "field": "amount",
            "message": "Not enough credits for this usage.",
        }
    ]
    assert (await credits(api, admin))["total"] == "1.00"
    assert (await use(api, operator, admin.team_id, "1.00", "b"))["usage"]["fromFree"] == "1.00"
    assert (await credits(api, admin))["status"] == "CREDITS_EXHAUSTED"
    # The rejected key stored nothing: after a top-up the same key succeeds.
    await grant(api, operator, admin.team_id, "5.00", "PREPAID")
    assert (await use(api, operator, admin.team_id, "1.01", "a"))["usage"]["fromPrepaid"] == "1.01"


async def test_many_tiny_debits_sum_exactly(api: Api, admin: Actor, operator: Actor) -> None:
    await grant(api, operator, admin.team_id, "0.01")
    for i in range(100):
        result = await use(api, operator, admin.team_id, "0.00001234", f"tiny-{i}")
        assert result["errors"] == []
    state = await credits(api, admin)
    assert state["total"] == "0.008766"  # 0.01 - 100 * 0.00001234, exactly
    assert state["grants"][0]["remaining"] == "0.008766"


async def test_idempotency_replay_and_reuse(api: Api, admin: Actor, operator: Actor) -> None:
    await grant(api, operator, admin.team_id, "10.00")
    first = await use(api, operator, admin.team_id, "1.00", "same", description="x")
    replay = await use(api, operator, admin.team_id, "1.00", "same", description="x")
    assert replay["usage"] == first["usage"]
    assert (await credits(api, admin))["total"] == "9.00"
    for amount, description in [("2.00", "x"), ("1.00", "y"), ("1.00", None)]:
        other = await use(api, operator, admin.team_id, amount, "same", description=description)
        assert other["usage"] is None
        assert other["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    # Keys are per team.
    other_team = await sign_up(api, "other@example.com")
    await grant(api, operator, other_team.team_id, "1.00")
    assert (await use(api, operator, other_team.team_id, "1.00", "same", description="x"))[
        "errors"
    ] == []
    assert (await credits(api, admin))["total"] == "9.00"


async def test_expired_credits_stop_counting_at_their_instant(
    api: Api, admin: Actor, operator: Actor
) -> None:
    start = datetime(2026, 6, 1, 9, tzinfo=UTC)
    clock.freeze(start)
    await grant(
        api, operator, admin.team_id, "5.00", "PROMOTIONAL", expires_at="2026-06-01T10:00:00Z"
    )
    await grant(api, operator, admin.team_id, "1.00", "PREPAID")
    await use(api, operator, admin.team_id, "1.00", "before")
    clock.freeze(datetime(2026, 6, 1, 9, 59, 59, 999999, tzinfo=UTC))
    assert (await credits(api, admin))["promotional"] == "4.00"
    clock.freeze(datetime(2026, 6, 1, 10, tzinfo=UTC))
    state = await credits(api, admin)
    assert (state["total"], state["promotional"], len(state["grants"])) == ("1.00", "0.00", 1)
    rejected = await use(api, operator, admin.team_id, "1.50", "after")
    assert rejected["errors"][0]["code"] == "CREDITS_EXHAUSTED"
    assert (await use(api, operator, admin.team_id, "1.00", "after-ok"))["usage"][
        "fromPrepaid"
    ] == "1.00"


async def test_occurred_at_window_and_month(api: Api, admin: Actor, operator: Actor) -> None:
    clock.freeze(datetime(2026, 4, 2, 0, 0, tzinfo=UTC))
    await api.ok(LIMIT, {"t": admin.team_id, "l": "0"}, admin.token)
    await grant(api, operator, admin.team_id, "10.00")
    future = await use(api, operator, admin.team_id, "1", "f", occurred_at="2026-04-02T00:05:01Z")
    assert future["errors"][0]["field"] == "occurredAt"
    ok_future = await use(
        api, operator, admin.team_id, "1", "f2", occurred_at="2026-04-02T00:04:59Z"
    )
    assert ok_future["errors"] == []
    too_old = await use(api, operator, admin.team_id, "1", "o", occurred_at="2026-02-28T23:59:59Z")
    assert too_old["errors"][0]["field"] == "occurredAt"
    last_month = await use(
        api, operator, admin.team_id, "1", "m", occurred_at="2026-03-01T00:00:00Z"
    )
    assert last_month["usage"]["occurredAt"] == "2026-03-01T00:00:00+00:00"


async def test_previous_month_usage_counts_against_that_months_limit(
    api: Api, admin: Actor, operator: Actor
) -> None:
    clock.freeze(datetime(2026, 4, 2, tzinfo=UTC))
    await set_limit(admin.team_id, "3.00")
    march = await use(api, operator, admin.team_id, "3.00", "m", occurred_at="2026-03-31T23:00:00Z")
    assert march["usage"]["invoiced"] == "3.00"
    state = await credits(api, admin)
    assert state["invoicedThisMonth"] == "0.00"  # March's usage is not April's
    assert (await use(api, operator, admin.team_id, "3.00", "a"))["usage"]["invoiced"] == "3.00"
    again = await use(
        api, operator, admin.team_id, "0.01", "m2", occurred_at="2026-03-31T23:30:00Z"
    )
    assert again["errors"][0]["code"] == "INVOICED_LIMIT_REACHED"


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("-1.00", "INVALID_AMOUNT"),
        ("0", "INVALID_AMOUNT"),
        ("0.000000001", "INVALID_AMOUNT"),
        ("abc", "INVALID_AMOUNT"),
        ("NaN", "INVALID_AMOUNT"),
        ("Infinity", "INVALID_AMOUNT"),
        ("-Infinity", "INVALID_AMOUNT"),
        ("1e400", "INVALID_AMOUNT"),
        ("99999999999999999999999999", "INVALID_AMOUNT"),
        ("", "INVALID_AMOUNT"),
        (" ", "INVALID_AMOUNT"),
        ("1,00", "INVALID_AMOUNT"),
    ],
)
async def test_bad_amounts_are_user_errors_and_write_nothing(
    api: Api, admin: Actor, operator: Actor, amount: str, code: str
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    result = await use(api, operator, admin.team_id, amount, "bad")
    assert result["usage"] is None
    assert result["errors"][0]["code"] == code
    assert result["errors"][0]["field"] == "amount"
    assert (await credits(api, admin))["total"] == "1.00"


async def test_bad_keys_teams_and_literal_amounts(api: Api, admin: Actor, operator: Actor) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    for key in ["", "   ", "k" * 256]:
        result = await use(api, operator, admin.team_id, "0.10", key)
        assert result["errors"][0] | {"message": ""} == {
            "code": "INVALID_INPUT",
            "field": "idempotencyKey",
            "message": "",
        }
    assert (await use(api, operator, admin.team_id, "0.10", "k" * 255))["errors"] == []
    for team in ["nope", "00000000-0000-0000-0000-000000000000"]:
        result = await use(api, operator, team, "0.10", "x")
        assert result["errors"][0]["code"] == "NOT_FOUND"
    # Money is a decimal string: a literal number or a JSON number is refused on the field.
    literal = await api.ok(
        f'mutation {{ recordUsage(input: {{teamId: "{admin.team_id}", amount: 0.1, idempotencyKey: "lit"}}) '
        "{ usage { amount } errors { code field } } }",
        token=operator.token,
    )
    assert literal["recordUsage"] == {
        "usage": None,
        "errors": [{"code": "INVALID_AMOUNT", "field": "amount"}],
    }
    number = await api.ok(USAGE, {"t": admin.team_id, "a": 0.2, "key": "num"}, operator.token)
    assert number["recordUsage"]["errors"][0]["code"] == "INVALID_AMOUNT"
    assert (await credits(api, admin))["total"] == "0.90"  # 1.00 - 0.10


async def test_only_operators_record_usage_and_grant(api: Api, admin: Actor) -> None:
    member = await sign_up(api, "m@example.com")
    for actor in [admin, member]:
        code = await api.error_code(USAGE, {"t": admin.team_id, "a": "1", "key": "x"}, actor.token)
        assert code == "FORBIDDEN"
    assert (
        await api.error_code(USAGE, {"t": admin.team_id, "a": "1", "key": "x"}) == "UNAUTHENTICATED"
    )


async def test_limit_bounds(api: Api, admin: Actor) -> None:
    for limit in ["-1", "0.001", "1000000.01", "abc"]:
        data = await api.ok(LIMIT, {"t": admin.team_id, "l": limit}, admin.token)
        assert data["setInvoicedSpendingLimit"]["errors"][0]["code"] == "INVALID_AMOUNT", limit
        assert data["setInvoicedSpendingLimit"]["errors"][0]["field"] == "limit"
    data = await api.ok(LIMIT, {"t": admin.team_id, "l": "0"}, admin.token)
    assert data["setInvoicedSpendingLimit"]["credits"]["invoicedSpendingLimit"] == "0.00"


async def test_total_alone_is_exact_across_an_expiry(
    api: Api, admin: Actor, operator: Actor
) -> None:
    """`credits { total }` reads the account's cached balances; an expiry makes them stale,
    so that read falls back to the live grants."""
    clock.freeze(datetime(2026, 6, 1, 9, tzinfo=UTC))
    await grant(
        api, operator, admin.team_id, "5.00", "PROMOTIONAL", expires_at="2026-06-01T10:00:00Z"
    )
    await grant(api, operator, admin.team_id, "1.25", "PREPAID")
    query = "query($t: ID!) { team(id: $t) { credits { total prepaid } } }"
    data = await api.ok(query, {"t": admin.team_id}, admin.token)
    assert data["team"]["credits"] == {"total": "6.25", "prepaid": "1.25"}
    clock.freeze(datetime(2026, 6, 1, 10, tzinfo=UTC))
    data = await api.ok(query, {"t": admin.team_id}, admin.token)
    assert data["team"]["credits"] == {"total": "1.25", "prepaid": "1.25"}
    status = "query($t: ID!) { team(id: $t) { credits { status invoicedThisMonth } } }"
    data = await api.ok(status, {"t": admin.team_id}, admin.token)
    assert data["team"]["credits"] == {"status": "ACTIVE", "invoicedThisMonth": "0.00"}


async def test_invoiced_only_usage_announces_the_change(
    api: Api, admin: Actor, operator: Actor
) -> None:
    """Usage drawn wholly from the invoiced tier touches no grant, yet the balance shown
    (invoiced this month) changed: it must be published and the account stamped."""
    import uuid as uuid_module

    from app.events import bus

    await set_limit(admin.team_id, "5.00")
    before = (await credits(api, admin))["updatedAt"]
    announced: list[object] = []
    original = bus.credits_changed_many

    async def spy(team_ids: Iterable[uuid_module.UUID]) -> None:
        team_ids = list(team_ids)
        announced.extend(team_ids)
        await original(team_ids)

    bus.credits_changed_many = spy  # type: ignore[assignment]
    try:
        clock.advance(timedelta(seconds=1))
        result = await use(api, operator, admin.team_id, "1.00", "inv-only")
    finally:
        bus.credits_changed_many = original  # type: ignore[assignment]
    assert result["usage"]["invoiced"] == "1.00"
    assert announced == [uuid_module.UUID(admin.team_id)]
    state = await credits(api, admin)
    assert state["invoicedThisMonth"] == "1.00"
    assert state["updatedAt"] > before


async def test_usage_ids_are_time_ordered(api: Api, admin: Actor, operator: Actor) -> None:
    """UUIDv7: each record's id sorts after the ones before it, so the primary-key index
    takes inserts at its end (a page per batch, not a random page per event)."""
    await grant(api, operator, admin.team_id, "1.00")
    ids = [
        uuid.UUID((await use(api, operator, admin.team_id, "0.01", f"o{i}"))["usage"]["id"])
        for i in range(5)
    ]
    assert {i.version for i in ids} == {7}
    assert ids == sorted(ids)
