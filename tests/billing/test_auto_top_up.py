"""Auto top-up: configuration rules, one top-up per crossing, caps, pause on decline.

Charges go through the real payments service against the localstripe emulator;
a fake `purchase_off_session` stands in where the emulator cannot show a case
(a charge held open, PROCESSING, 3-D Secure off-session).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from app.billing import auto_top_up, sweeper
from app.credits import auto_top_up as top_up_settings
from app.credits import service as credits_service
from app.credits.models import (
    AlertKind,
    AutoTopUpAttempt,
    BillingAlert,
    CreditAccount,
    CreditKind,
    TopUpStatus,
)
from app.kit import clock
from app.kit.money import format_units, parse
from app.payments.models import PaymentMethodType, Purchase, PurchaseStatus
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import CONFIGURE, configure
from tests.support.credits import units, use
from tests.support.payments import add_card

AUTO_TOP_UP = """query($t: ID!) { team(id: $t) {
  autoTopUp { enabled threshold amount monthlyLimit pausedReason pending }
  credits { total prepaid } } }"""


async def setup(
    team_id: uuid.UUID, *, credits: str, threshold: str = "10.00", monthly: str = "100.00"
) -> None:
    await credits_service.grant_credits(team_id, CreditKind.FREE, units(credits))
    await auto_top_up.configure(
        team_id,
        enabled=True,
        threshold=units(threshold),
        amount=units("25.00"),
        monthly_limit=units(monthly),
    )


async def total(team_id: uuid.UUID) -> str:
    return format_units((await credits_service.credits_view(team_id)).total)


async def statuses(team_id: uuid.UUID) -> list[str]:
    rows = await AutoTopUpAttempt.filter(team_id=team_id).order_by("created_at")
    return [str(r.status) for r in rows]


async def alert_kinds(team_id: uuid.UUID, kind: AlertKind | None = None) -> int:
    query = BillingAlert.filter(team_id=team_id)
    return await (query.filter(kind=kind) if kind else query).count()


@dataclass
class FakeCharge:
    """`purchase_off_session` with scripted outcomes; idempotent per key like the real one."""

    outcomes: list[PurchaseStatus] = field(default_factory=list)
    hold: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    keys: list[str] = field(default_factory=list)
    settled: dict[str, PurchaseStatus] = field(default_factory=dict)

    async def __call__(
        self, team_id: uuid.UUID, amount_units: int, *, idempotency_key: str, reason: str
    ) -> Any:
        assert reason == "auto_top_up"
        self.keys.append(idempotency_key)
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        status = self.settled.get(idempotency_key)
        if status is None or status is PurchaseStatus.PROCESSING:
            status = self.outcomes.pop(0) if self.outcomes else PurchaseStatus.SUCCEEDED
            if status is PurchaseStatus.SUCCEEDED:
                await credits_service.grant_credits(
                    team_id, CreditKind.PREPAID, amount_units, description="Auto top-up"
                )
            self.settled[idempotency_key] = status
        failure = "Your card was declined." if status is PurchaseStatus.FAILED else None
        return SimpleNamespace(id=uuid.uuid4(), status=status, failure_reason=failure)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCharge:
    charge = FakeCharge()
    monkeypatch.setattr(auto_top_up, "purchase_off_session", charge)

    async def a_card(_team_id: uuid.UUID) -> Any:
        return SimpleNamespace(type=PaymentMethodType.CARD)

    monkeypatch.setattr(auto_top_up, "default_payment_method", a_card)
    return charge


# --- configuration ------------------------------------------------------------------------------


async def test_a_team_starts_without_auto_top_up(api: Api, admin: Actor) -> None:
    data = await api.ok(AUTO_TOP_UP, {"t": admin.team_id}, admin.token)
    assert data["team"]["autoTopUp"] == {
        "enabled": False,
        "threshold": "0.00",
        "amount": "0.00",
        "monthlyLimit": "0.00",
        "pausedReason": None,
        "pending": False,
    }


async def test_enabling_needs_a_default_card(api: Api, admin: Actor) -> None:
    payload = await configure(api, admin)
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("PAYMENT_METHOD_REQUIRED", "enabled")
    ]
    assert payload["autoTopUp"] is None
    # Disabled (a low-credit alert threshold alone) needs no card.
    off = await configure(api, admin, enabled=False)
    assert off["errors"] == []
    assert off["autoTopUp"]["enabled"] is False
    await add_card(api, admin)
    on = await configure(api, admin, threshold="0", amount="25", monthly="25")
    assert on["errors"] == []
    assert on["autoTopUp"] == {
        "enabled": True,
        "threshold": "0.00",
        "amount": "25.00",
        "monthlyLimit": "25.00",
        "pausedReason": None,
        "pending": False,
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"threshold": "-1.00"}, ("INVALID_AMOUNT", "threshold")),
        ({"threshold": "1.001"}, ("INVALID_AMOUNT", "threshold")),
        ({"threshold": "ten"}, ("INVALID_AMOUNT", "threshold")),
        ({"threshold": "1000000.01"}, ("INVALID_AMOUNT", "threshold")),
        ({"amount": "24.99"}, ("INVALID_AMOUNT", "amount")),
        ({"amount": "25.001"}, ("INVALID_AMOUNT", "amount")),
        ({"amount": "0"}, ("INVALID_AMOUNT", "amount")),
        ({"amount": "100000.01", "monthly": "200000.00"}, ("INVALID_AMOUNT", "amount")),
        ({"monthly": "24.99"}, ("INVALID_AMOUNT", "monthlyLimit")),
        ({"amount": "50.00", "monthly": "49.99"}, ("INVALID_AMOUNT", "monthlyLimit")),
        ({"monthly": "1000000.01"}, ("INVALID_AMOUNT", "monthlyLimit")),
    ],
)
async def test_bad_configuration_is_refused(
    api: Api, admin: Actor, values: dict[str, str], expected: tuple[str, str]
) -> None:
    payload = await configure(api, admin, enabled=False, **values)
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [expected]
    account = await CreditAccount.get(team_id=uuid.UUID(admin.team_id))
    assert account.auto_top_up_threshold is None


async def test_only_admins_configure(api: Api, admin: Actor) -> None:
    member = await sign_up(api)
    await join(api, admin, member)
    variables = {"t": admin.team_id, "e": False, "th": "1", "a": "25", "m": "25"}
    assert await api.error_code(CONFIGURE, variables, member.token) == "FORBIDDEN"
    stranger = await sign_up(api)
    assert await api.error_code(CONFIGURE, variables, stranger.token) == "NOT_FOUND"
    # Members read it.
    data = await api.ok(AUTO_TOP_UP, {"t": admin.team_id}, member.token)
    assert data["team"]["autoTopUp"]["enabled"] is False


# --- with the Stripe emulator --------------------------------------------------------------------


async def test_a_crossing_charges_the_default_card_once(api: Api, admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    await add_card(api, admin)
    await credits_service.grant_credits(team_id, CreditKind.FREE, units("30.00"))
    assert (await configure(api, admin))["errors"] == []
    assert await use(team_id, "15.00")  # 15.00: still above
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == []
    assert await use(team_id, "6.00")  # 9.00: below the threshold
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED"]
    data = await api.ok(AUTO_TOP_UP, {"t": admin.team_id}, admin.token)
    assert data["team"]["credits"] == {"total": "34.00", "prepaid": "25.00"}
    assert data["team"]["autoTopUp"]["pending"] is False
    (purchase,) = await Purchase.filter(team_id=team_id)
    assert purchase.status is PurchaseStatus.SUCCEEDED
    assert purchase.off_session
    assert purchase.amount == units("25.00")
    (attempt,) = await AutoTopUpAttempt.filter(team_id=team_id)
    assert attempt.purchase_id == str(purchase.id)
    assert await alert_kinds(team_id, AlertKind.CREDITS_LOW) == 1
    assert await use(team_id, "2.00")  # 32.00: above, nothing more
    await auto_top_up.wait_idle()
    assert await Purchase.filter(team_id=team_id).count() == 1


async def test_fifty_concurrent_usage_events_crossing_give_one_top_up(
    api: Api, admin: Actor
) -> None:
    team_id = uuid.UUID(admin.team_id)
    await add_card(api, admin)
    await setup(team_id, credits="20.00")
    # 50 events of 0.25 in their own transactions at once (truly concurrent on PostgreSQL):
    # 20.00 -> 7.50 crosses 10.00 exactly once.
    accepted = await asyncio.gather(*(use(team_id, "0.25") for _ in range(50)))
    assert all(accepted)
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED"]
    assert await Purchase.filter(team_id=team_id).count() == 1
    assert await total(team_id) == "32.50"
    assert await alert_kinds(team_id, AlertKind.CREDITS_LOW) == 1


async def test_caps_hold_across_a_month_end(api: Api, admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    await add_card(api, admin)
    clock.freeze(datetime(2027, 1, 31, 12, 0, tzinfo=UTC))
    await setup(team_id, credits="20.00", monthly="100.00")

    async def cross() -> None:
        """Spend down to 5.00 (from at least the threshold), then let the top-up run."""
        left = parse(await total(team_id)) - units("5.00")
        assert await use(team_id, format_units(left))
        await auto_top_up.wait_idle()

    for _ in range(4):
        await cross()
        clock.advance(timedelta(minutes=1))
    assert await statuses(team_id) == ["SUCCEEDED"] * 4
    assert await total(team_id) == "30.00"
    await cross()  # a fifth in January would pass the 100.00 monthly limit
    skipped = await AutoTopUpAttempt.filter(team_id=team_id, status=TopUpStatus.SKIPPED).first()
    assert skipped is not None
    assert "monthly limit" in (skipped.failure_reason or "")
    assert await total(team_id) == "5.00"

    clock.freeze(datetime(2027, 2, 1, 0, 30, tzinfo=UTC))  # February: a new monthly budget
    await credits_service.grant_credits(team_id, CreditKind.FREE, units("10.00"))
    await cross()  # the fifth in 24 hours: allowed
    assert await total(team_id) == "30.00"
    await cross()  # a sixth within 24 hours: held back though February has room
    last = await AutoTopUpAttempt.filter(team_id=team_id).order_by("-created_at").first()
    assert last is not None
    assert last.status is TopUpStatus.SKIPPED
    assert "24 hours" in (last.failure_reason or "")
    assert await total(team_id) == "5.00"

    clock.freeze(datetime(2027, 2, 1, 12, 5, tzinfo=UTC))  # January's four left the window
    await credits_service.grant_credits(team_id, CreditKind.FREE, units("10.00"))
    await cross()
    assert await total(team_id) == "30.00"

    charged = await AutoTopUpAttempt.filter(team_id=team_id, status=TopUpStatus.SUCCEEDED)
    by_month: dict[str, int] = {}
    for attempt in charged:
        by_month[attempt.period] = by_month.get(attempt.period, 0) + attempt.amount
        window = [a for a in charged if timedelta(0) <= attempt.created_at - a.created_at < DAY]
        assert len(window) <= top_up_settings.MAX_PER_DAY
    assert by_month == {"2027-01": units("100.00"), "2027-02": units("50.00")}
    assert await Purchase.filter(team_id=team_id, status=PurchaseStatus.SUCCEEDED).count() == 6


DAY = timedelta(hours=24)


async def test_a_declined_top_up_pauses_and_alerts_once(api: Api, admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    await add_card(api, admin, "pm_card_chargeCustomerFail")
    await setup(team_id, credits="20.00")
    assert await use(team_id, "11.00")  # 9.00
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["FAILED"]
    data = await api.ok(AUTO_TOP_UP, {"t": admin.team_id}, admin.token)
    paused = data["team"]["autoTopUp"]["pausedReason"]
    assert paused
    assert data["team"]["autoTopUp"]["enabled"] is True
    assert data["team"]["credits"]["total"] == "9.00"
    assert await alert_kinds(team_id, AlertKind.AUTO_TOP_UP_FAILED) == 1
    # Paused: later crossings alert CREDITS_LOW but neither charge nor alert a failure again.
    for _ in range(2):
        await credits_service.grant_credits(team_id, CreditKind.FREE, units("10.00"))
        assert await use(team_id, "10.00")
        await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["FAILED"]
    assert await Purchase.filter(team_id=team_id).count() == 1
    assert await alert_kinds(team_id, AlertKind.AUTO_TOP_UP_FAILED) == 1
    assert await alert_kinds(team_id, AlertKind.CREDITS_LOW) == 3
    # A good card and configuring again lift the pause; already below: it tops up at once.
    await add_card(api, admin, "pm_card_visa", make_default=True)
    resumed = await configure(api, admin)
    assert resumed["errors"] == []
    assert resumed["autoTopUp"]["pausedReason"] is None
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["FAILED", "SUCCEEDED"]
    assert await total(team_id) == "34.00"
    assert await alert_kinds(team_id, AlertKind.AUTO_TOP_UP_FAILED) == 1


async def test_a_stalled_top_up_is_resumed_by_the_sweeper(api: Api, admin: Actor) -> None:
    """A worker died after the usage committed: the intent is on the row, nothing ran."""
    team_id = uuid.UUID(admin.team_id)
    await add_card(api, admin)
    await setup(team_id, credits="5.00")
    await auto_top_up.wait_idle()  # configuring below the threshold started one already
    assert await statuses(team_id) == ["SUCCEEDED"]
    await CreditAccount.filter(team_id=team_id).update(auto_top_up_pending=True)
    await sweeper.sweep_once()
    await auto_top_up.wait_idle()
    # 30.00 is above the threshold: the resumed pass charges again only because the
    # intent was recorded, exactly once.
    assert await statuses(team_id) == ["SUCCEEDED", "SUCCEEDED"]
    assert not (await CreditAccount.get(team_id=team_id)).auto_top_up_pending


# --- with a scripted charge ----------------------------------------------------------------------


async def test_usage_never_waits_for_the_charge_and_one_is_pending_at_a_time(
    admin: Actor, fake: FakeCharge
) -> None:
    team_id = uuid.UUID(admin.team_id)
    fake.hold = asyncio.Event()
    await setup(team_id, credits="20.00")
    assert await use(team_id, "11.00")  # returns while the charge is held open
    await asyncio.wait_for(fake.started.wait(), 10)
    account = await CreditAccount.get(team_id=team_id)
    assert account.auto_top_up_pending
    assert await total(team_id) == "9.00"
    # Credits back above and below again while the first charge is open: no second one.
    await credits_service.grant_credits(team_id, CreditKind.FREE, units("5.00"))
    assert await use(team_id, "6.00")
    await asyncio.sleep(0)
    assert len(fake.keys) == 1
    fake.hold.set()
    await auto_top_up.wait_idle()
    assert len(fake.keys) == 1
    assert await statuses(team_id) == ["SUCCEEDED"]
    assert await total(team_id) == "33.00"


async def test_still_below_the_threshold_after_a_top_up_tops_up_again(
    admin: Actor, fake: FakeCharge
) -> None:
    team_id = uuid.UUID(admin.team_id)
    await setup(team_id, credits="110.00", threshold="100.00", monthly="1000.00")
    assert await use(team_id, "60.00")  # 50 -> 75 -> 100
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED", "SUCCEEDED"]
    assert await total(team_id) == "100.00"


async def test_the_monthly_limit_is_never_passed_by_part_of_a_top_up(
    admin: Actor, fake: FakeCharge
) -> None:
    team_id = uuid.UUID(admin.team_id)
    await setup(team_id, credits="20.00", monthly="60.00")
    for _ in range(3):
        assert await use(team_id, format_units(parse(await total(team_id)) - units("5.00")))
        await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED", "SUCCEEDED", "SKIPPED"]
    # Further usage below the threshold is the same crossing: no attempt per event.
    for _ in range(3):
        assert await use(team_id, "1.00")
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED", "SUCCEEDED", "SKIPPED"]
    assert len(fake.keys) == 2


async def test_a_card_that_needs_its_holder_pauses(admin: Actor, fake: FakeCharge) -> None:
    team_id = uuid.UUID(admin.team_id)
    fake.outcomes = [PurchaseStatus.REQUIRES_ACTION]
    await setup(team_id, credits="20.00")
    assert await use(team_id, "15.00")
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["FAILED"]
    account = await CreditAccount.get(team_id=team_id)
    assert "authenticate" in (account.auto_top_up_paused_reason or "")
    assert not account.auto_top_up_pending
    assert await alert_kinds(team_id, AlertKind.AUTO_TOP_UP_FAILED) == 1


async def test_processing_stays_pending_until_settled_with_the_same_key(
    admin: Actor, fake: FakeCharge
) -> None:
    team_id = uuid.UUID(admin.team_id)
    fake.outcomes = [PurchaseStatus.PROCESSING, PurchaseStatus.SUCCEEDED]
    await setup(team_id, credits="20.00")
    assert await use(team_id, "15.00")
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["PROCESSING"]
    assert (await CreditAccount.get(team_id=team_id)).auto_top_up_pending
    await sweeper.sweep_once()  # not stale yet: left alone
    await auto_top_up.wait_idle()
    assert len(fake.keys) == 1
    clock.advance(top_up_settings.STALE_AFTER + timedelta(seconds=1))
    await sweeper.sweep_once()
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED"]
    assert fake.keys[0] == fake.keys[1]  # the same idempotency key: never a second charge
    assert await total(team_id) == "30.00"


async def test_a_disabled_auto_top_up_never_charges(admin: Actor, fake: FakeCharge) -> None:
    team_id = uuid.UUID(admin.team_id)
    await credits_service.grant_credits(team_id, CreditKind.FREE, units("20.00"))
    await auto_top_up.configure(
        team_id,
        enabled=False,
        threshold=units("10.00"),
        amount=units("25.00"),
        monthly_limit=units("100.00"),
    )
    assert await use(team_id, "15.00")
    await auto_top_up.wait_idle()
    assert fake.keys == []
    assert await statuses(team_id) == []
    assert await alert_kinds(team_id, AlertKind.CREDITS_LOW) == 1


async def test_a_removed_card_pauses_instead_of_failing_silently(
    admin: Actor, fake: FakeCharge, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.kit.errors import DomainError, ErrorCode

    team_id = uuid.UUID(admin.team_id)
    await setup(team_id, credits="20.00")

    async def no_card(*_args: Any, **_kwargs: Any) -> Any:
        raise DomainError(ErrorCode.PAYMENT_METHOD_REQUIRED, "Add a card first.", "x")

    monkeypatch.setattr(auto_top_up, "purchase_off_session", no_card)
    assert await use(team_id, "15.00")
    await auto_top_up.wait_idle()
    account = await CreditAccount.get(team_id=team_id)
    assert account.auto_top_up_paused_reason == "Add a card first."
    assert await alert_kinds(team_id, AlertKind.AUTO_TOP_UP_FAILED) == 1


async def test_a_top_up_cut_short_at_shutdown_is_resumed_with_the_same_key(
    admin: Actor, fake: FakeCharge
) -> None:
    team_id = uuid.UUID(admin.team_id)
    fake.hold = asyncio.Event()
    await setup(team_id, credits="20.00")
    assert await use(team_id, "15.00")
    await asyncio.wait_for(fake.started.wait(), 10)
    await auto_top_up.shutdown(grace_seconds=0.05)  # the charge is still open: cancelled
    assert await statuses(team_id) == ["PENDING"]
    fake.hold.set()
    clock.advance(top_up_settings.STALE_AFTER + timedelta(seconds=1))
    await sweeper.sweep_once()
    await auto_top_up.wait_idle()
    assert await statuses(team_id) == ["SUCCEEDED"]
    assert len(set(fake.keys)) == 1
    assert await total(team_id) == "30.00"
