"""Promo codes: creation, redemption rules and errors, once per team, the guessing throttle."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits import promo
from app.credits.models import CreditGrant, CreditKind, PromoCode, PromoFailure, PromoRedemption
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import UNITS_PER_DOLLAR
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import credits

CREATE = """mutation($c: String!, $a: Decimal!, $x: DateTime, $m: Int, $v: Int) {
  createPromoCode(input: {code: $c, amount: $a, expiresAt: $x, maxRedemptions: $m,
      creditValidityDays: $v}) {
    code { id code amount expiresAt maxRedemptions redemptions creditValidityDays createdAt }
    errors { code field message } } }"""
REDEEM = """mutation($t: ID!, $c: String!) { redeemPromoCode(input: {teamId: $t, code: $c}) {
  grant { id kind amount remaining description expiresAt } credits { total promotional }
  errors { code field message } } }"""


async def create(api: Api, operator: Actor, code: str, amount: str = "10.00", **extra: Any) -> Any:
    data = await api.ok(CREATE, {"c": code, "a": amount, **extra}, operator.token)
    return data["createPromoCode"]


async def redeem(api: Api, actor: Actor, code: str, team_id: str | None = None) -> Any:
    data = await api.ok(REDEEM, {"t": team_id or actor.team_id, "c": code}, actor.token)
    return data["redeemPromoCode"]


def codes(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


async def test_operator_creates_and_admin_redeems(api: Api, operator: Actor, admin: Actor) -> None:
    created = await create(api, operator, "  Welcome-10 ", "10.00", m=5)
    assert created["errors"] == []
    assert created["code"]["code"] == "WELCOME-10"
    assert created["code"]["amount"] == "10.00"
    assert created["code"]["maxRedemptions"] == 5
    assert created["code"]["redemptions"] == 0
    # Case-insensitive and trimmed at redemption too.
    redeemed = await redeem(api, admin, " welcome-10")
    assert redeemed["errors"] == []
    grant = redeemed["grant"]
    assert (grant["kind"], grant["amount"], grant["remaining"]) == ("PROMOTIONAL", "10.00", "10.00")
    assert grant["expiresAt"] is None
    assert grant["description"] == "Promo code WELCOME-10"
    assert redeemed["credits"] == {"total": "10.00", "promotional": "10.00"}
    code = await PromoCode.get(code="WELCOME-10")
    assert code.redemptions == 1


async def test_credit_validity_days_make_the_credits_expire(
    api: Api, operator: Actor, admin: Actor
) -> None:
    now = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    clock.freeze(now)
    await create(api, operator, "SPRING", "5.50", v=30)
    grant = (await redeem(api, admin, "spring"))["grant"]
    assert datetime.fromisoformat(grant["expiresAt"]) == now + timedelta(days=30)


async def test_only_operators_create_codes(api: Api, admin: Actor) -> None:
    variables = {"c": "FREE", "a": "10.00"}
    assert await api.error_code(CREATE, variables, admin.token) == "FORBIDDEN"
    assert await api.error_code(CREATE, variables) == "UNAUTHENTICATED"
    assert await PromoCode.all().count() == 0


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"c": "   "}, ("INVALID_INPUT", "code")),
        ({"c": "TWO WORDS"}, ("INVALID_INPUT", "code")),
        ({"c": "X" * 65}, ("INVALID_INPUT", "code")),
        ({"a": "10.001"}, ("INVALID_AMOUNT", "amount")),
        ({"a": "0"}, ("INVALID_AMOUNT", "amount")),
        ({"a": "-5.00"}, ("INVALID_AMOUNT", "amount")),
        ({"a": "NaN"}, ("INVALID_AMOUNT", "amount")),
        ({"a": "1000000.01"}, ("INVALID_AMOUNT", "amount")),
        ({"x": "2020-01-01T00:00:00Z"}, ("INVALID_INPUT", "expiresAt")),
        ({"m": 0}, ("INVALID_INPUT", "maxRedemptions")),
        ({"v": 0}, ("INVALID_INPUT", "creditValidityDays")),
        ({"v": 3651}, ("INVALID_INPUT", "creditValidityDays")),
    ],
)
async def test_bad_codes_are_refused(
    api: Api, operator: Actor, variables: dict[str, Any], expected: tuple[str, str]
) -> None:
    payload = await create(api, operator, **{"code": "OK", **_renamed(variables)})
    assert codes(payload) == [expected]
    assert payload["code"] is None
    assert await PromoCode.all().count() == 0


def _renamed(variables: dict[str, Any]) -> dict[str, Any]:
    out = dict(variables)
    if "c" in out:
        out["code"] = out.pop("c")
    if "a" in out:
        out["amount"] = out.pop("a")
    return out


async def test_codes_are_unique_whatever_the_case(api: Api, operator: Actor) -> None:
    assert (await create(api, operator, "LAUNCH"))["errors"] == []
    payload = await create(api, operator, " launch ")
    assert codes(payload) == [("PROMO_CODE_EXISTS", "code")]


async def test_unknown_code(api: Api, admin: Actor) -> None:
    payload = await redeem(api, admin, "NOPE")
    assert codes(payload) == [("PROMO_CODE_INVALID", "code")]
    assert payload["grant"] is None
    assert payload["credits"] is None


async def test_once_per_team(api: Api, operator: Actor, admin: Actor) -> None:
    await create(api, operator, "ONCE")
    assert (await redeem(api, admin, "ONCE"))["errors"] == []
    again = await redeem(api, admin, "once")
    assert codes(again) == [("PROMO_CODE_ALREADY_REDEEMED", "code")]
    assert (await credits(api, admin))["promotional"] == "10.00"
    # Another team of the same admin may redeem it: it is once per team, not per person.
    other = await api.ok(
        'mutation { createTeam(input: {name: "Second"}) { team { id } } }', token=admin.token
    )
    second = other["createTeam"]["team"]["id"]
    assert (await redeem(api, admin, "ONCE", second))["errors"] == []


async def test_expired_code(api: Api, operator: Actor, admin: Actor) -> None:
    clock.freeze(datetime(2026, 6, 1, tzinfo=UTC))
    await create(api, operator, "SUMMER", x="2026-06-01T01:00:00Z")
    clock.advance(timedelta(hours=1))
    payload = await redeem(api, admin, "SUMMER")
    assert codes(payload) == [("PROMO_CODE_EXPIRED", "code")]
    assert (await credits(api, admin))["total"] == "0.00"


async def test_exhausted_code(api: Api, operator: Actor, admin: Actor) -> None:
    await create(api, operator, "FIRST2", m=2)
    first = await sign_up(api)
    assert (await redeem(api, first, "FIRST2"))["errors"] == []
    assert (await redeem(api, admin, "FIRST2"))["errors"] == []
    late = await sign_up(api)
    payload = await redeem(api, late, "FIRST2")
    assert codes(payload) == [("PROMO_CODE_EXHAUSTED", "code")]
    assert (await credits(api, late))["total"] == "0.00"
    assert (await PromoCode.get(code="FIRST2")).redemptions == 2


async def test_members_may_not_redeem_and_strangers_see_nothing(
    api: Api, operator: Actor, admin: Actor
) -> None:
    await create(api, operator, "TEAMONLY")
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    variables = {"t": admin.team_id, "c": "TEAMONLY"}
    assert await api.error_code(REDEEM, variables, member.token) == "FORBIDDEN"
    stranger = await sign_up(api)
    assert await api.error_code(REDEEM, variables, stranger.token) == "NOT_FOUND"
    assert await api.error_code(REDEEM, variables) == "UNAUTHENTICATED"
    missing = {"t": str(uuid.uuid4()), "c": "TEAMONLY"}
    assert await api.error_code(REDEEM, missing, admin.token) == "NOT_FOUND"
    assert await PromoRedemption.all().count() == 0


async def test_more_than_ten_failures_an_hour_are_rate_limited_without_a_lookup(
    api: Api, operator: Actor, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.freeze(datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    await create(api, operator, "REAL")
    lookups: list[str] = []
    real_find = promo.find_code

    async def counting_find(code: str, conn: BaseDBAsyncClient) -> PromoCode | None:
        lookups.append(code)
        return await real_find(code, conn)

    monkeypatch.setattr(promo, "find_code", counting_find)
    for attempt in range(10):
        clock.advance(timedelta(minutes=5))
        payload = await redeem(api, admin, f"GUESS{attempt}")
        assert codes(payload) == [("PROMO_CODE_INVALID", "code")]
    assert len(lookups) == 10
    # The 11th attempt, even with a real code, is refused before the code is looked up.
    payload = await redeem(api, admin, "REAL")
    assert codes(payload) == [("RATE_LIMITED", "code")]
    assert len(lookups) == 10
    assert (await credits(api, admin))["total"] == "0.00"
    # Throttled attempts do not extend the window; other teams are not affected.
    other = await sign_up(api)
    assert (await redeem(api, other, "REAL"))["errors"] == []
    # An hour after the first failure (9:05), one slot frees up.
    clock.advance(timedelta(minutes=16))
    assert (await redeem(api, admin, "REAL"))["errors"] == []
    assert (await credits(api, admin))["promotional"] == "10.00"


NEW_TEAM = (
    """mutation($n: String!) { createTeam(input: {name: $n}) { team { id } errors { code } } }"""
)


async def test_new_teams_do_not_reset_a_users_guesses(
    api: Api, operator: Actor, admin: Actor
) -> None:
    await create(api, operator, "REAL")
    for attempt in range(10):
        assert codes(await redeem(api, admin, f"GUESS{attempt}")) == [
            ("PROMO_CODE_INVALID", "code")
        ]
    # A fresh team of the same user has no failures of its own: the user's count still holds.
    fresh = (await api.ok(NEW_TEAM, {"n": "fresh"}, admin.token))["createTeam"]["team"]["id"]
    assert codes(await redeem(api, admin, "REAL", fresh)) == [("RATE_LIMITED", "code")]
    assert await PromoRedemption.all().count() == 0
    # Another admin of a team this user never tried on is not held back by them.
    other = await sign_up(api)
    assert (await redeem(api, other, "REAL"))["errors"] == []


async def test_every_kind_of_failure_counts(api: Api, operator: Actor, admin: Actor) -> None:
    await create(api, operator, "DONE")
    await redeem(api, admin, "DONE")
    for _ in range(10):
        assert codes(await redeem(api, admin, "DONE")) == [("PROMO_CODE_ALREADY_REDEEMED", "code")]
    assert codes(await redeem(api, admin, "DONE")) == [("RATE_LIMITED", "code")]
    assert await PromoFailure.filter(team_id=uuid.UUID(admin.team_id)).count() == 10


async def test_the_sweeper_prunes_old_failures(api: Api, admin: Actor) -> None:
    await redeem(api, admin, "MISSING")
    assert await promo.prune_failures() == 0
    clock.advance(timedelta(hours=1, seconds=1))
    assert await promo.prune_failures() == 1


async def test_concurrent_redemptions_by_one_team_give_one_grant(
    api: Api, operator: Actor, admin: Actor
) -> None:
    await create(api, operator, "RACE", "7.00")
    team_id = uuid.UUID(admin.team_id)
    outcomes = await asyncio.gather(
        *(promo.redeem_promo_code(team_id, "race") for _ in range(10)), return_exceptions=True
    )
    won = [o for o in outcomes if isinstance(o, promo.Redemption)]
    lost = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(won) == 1
    assert len(lost) == 9
    assert {e.code for e in lost} == {ErrorCode.PROMO_CODE_ALREADY_REDEEMED}
    grants = await CreditGrant.filter(team_id=team_id, kind=CreditKind.PROMOTIONAL)
    assert [g.amount for g in grants] == [7 * UNITS_PER_DOLLAR]
    assert await PromoRedemption.filter(team_id=team_id).count() == 1
    assert (await PromoCode.get(code="RACE")).redemptions == 1
    assert (await credits(api, admin))["total"] == "7.00"


async def test_concurrent_teams_never_pass_max_redemptions(api: Api, operator: Actor) -> None:
    await create(api, operator, "FEW", "3.00", m=3)
    teams = [uuid.UUID((await sign_up(api)).team_id) for _ in range(8)]
    outcomes = await asyncio.gather(
        *(promo.redeem_promo_code(t, "FEW") for t in teams), return_exceptions=True
    )
    won = [o for o in outcomes if isinstance(o, promo.Redemption)]
    lost = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(won) == 3
    assert {e.code for e in lost} == {ErrorCode.PROMO_CODE_EXHAUSTED}
    assert len(lost) == 5
    assert await PromoRedemption.all().count() == 3
    assert (await PromoCode.get(code="FEW")).redemptions == 3
    assert await CreditGrant.filter(kind=CreditKind.PROMOTIONAL).count() == 3
