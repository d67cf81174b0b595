"""Holds: money reserved under the account lock is never available twice; capture draws
what was used and frees the rest; release and expiry free it all. The ledger audit is
clean after each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from app.billing import sweeper
from app.billing.ledger_audit import audit
from app.credits import holds
from app.credits import service as credits_service
from app.credits.models import CreditAccount, Hold, HoldStatus, UsageRecord
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from tests.support.api import Actor, Api, sign_up
from tests.support.credits import give, units, use
from tests.support.holds import hold


def team(actor: Actor) -> uuid.UUID:
    return uuid.UUID(actor.team_id)


async def held_now(team_id: uuid.UUID) -> tuple[int, int]:
    """(held, available) as the API shows them."""
    view = await credits_service.credits_view(team_id)
    return view.held, view.available


async def assert_audit_clean() -> None:
    assert [str(d) for d in await audit()] == []


async def test_60_concurrent_holds_on_20_dollars_create_exactly_20(admin: Actor) -> None:
    await give(team(admin), "20.00")
    outcomes = await asyncio.gather(
        *(hold(admin.team_id, "1.00", f"h-{i}") for i in range(60)), return_exceptions=True
    )
    created = [o for o in outcomes if isinstance(o, Hold)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(created) == 20
    assert [e.code for e in refused] == [ErrorCode.CREDITS_EXHAUSTED] * 40
    assert len({h.id for h in created}) == 20
    assert await held_now(team(admin)) == (units("20.00"), 0)
    # Every cent is held: a usage event cannot take it, however small.
    assert not await use(team(admin), "0.01")
    view = await credits_service.credits_view(team(admin))
    assert view.total == units("20.00")  # nothing drawn from a grant
    await assert_audit_clean()


async def test_usage_takes_only_what_is_not_held(admin: Actor) -> None:
    await give(team(admin), "10.00")
    await hold(admin.team_id, "7.00")
    assert not await use(team(admin), "3.01")
    assert await use(team(admin), "3.00")
    assert await held_now(team(admin)) == (units("7.00"), 0)
    with pytest.raises(DomainError) as refused:
        await hold(admin.team_id, "0.01")
    assert refused.value.code is ErrorCode.CREDITS_EXHAUSTED
    await assert_audit_clean()


async def test_invoiced_headroom_counts_and_its_refusal_names_the_limit(admin: Actor) -> None:
    await credits_service.set_invoiced_limit(team(admin), units("10.00"))
    await give(team(admin), "5.00")
    first = await hold(admin.team_id, "12.00")  # 5.00 of credits, 7.00 of headroom
    with pytest.raises(DomainError) as refused:
        await hold(admin.team_id, "3.01")
    assert refused.value.code is ErrorCode.INVOICED_LIMIT_REACHED
    assert await held_now(team(admin)) == (units("12.00"), units("3.00"))
    capture = await holds.capture_hold(first.id, units("11.00"))
    assert (capture.usage.from_free, capture.usage.invoiced) == (units("5.00"), units("6.00"))
    view = await credits_service.credits_view(team(admin))
    assert (view.total, view.invoiced_this_month, view.held) == (0, units("6.00"), 0)
    assert view.available == units("4.00")
    await assert_audit_clean()


async def test_capturing_less_draws_it_once_and_frees_the_rest(admin: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "5.00")
    capture = await holds.capture_hold(held_hold.id, units("3.25"), description="stream")
    assert capture.hold.status is HoldStatus.CAPTURED
    assert capture.hold.captured == units("3.25")
    assert capture.usage.amount == units("3.25")
    assert capture.usage.from_free == units("3.25")
    assert capture.usage.idempotency_key == f"hold:{held_hold.id}"
    assert capture.usage.description == "stream"
    view = await credits_service.credits_view(team(admin))
    assert (view.total, view.held, view.available) == (units("16.75"), 0, units("16.75"))
    await assert_audit_clean()


async def test_capturing_more_than_held_is_refused_and_changes_nothing(admin: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "5.00")
    with pytest.raises(DomainError) as refused:
        await holds.capture_hold(held_hold.id, units("5.00000001"))
    assert (refused.value.code, refused.value.field) == (ErrorCode.INVALID_AMOUNT, "amount")
    stored = await Hold.get(id=held_hold.id)
    assert (stored.status, stored.captured) == (HoldStatus.HELD, 0)
    assert await held_now(team(admin)) == (units("5.00"), units("15.00"))
    assert await UsageRecord.filter(team_id=team(admin)).count() == 0
    await assert_audit_clean()


async def test_capture_is_idempotent(admin: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "5.00")
    first = await holds.capture_hold(held_hold.id, units("2.00"))
    again = await asyncio.gather(
        *(holds.capture_hold(held_hold.id, units("2.00")) for _ in range(5))
    )
    assert {c.usage.id for c in again} == {first.usage.id}
    assert {c.hold.captured for c in again} == {units("2.00")}
    assert await UsageRecord.filter(team_id=team(admin)).count() == 1
    assert (await credits_service.credits_view(team(admin))).total == units("18.00")
    await assert_audit_clean()


async def test_release_frees_it_all_and_closes_the_hold(admin: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "8.00")
    released = await holds.release_hold(held_hold.id)
    assert released.status is HoldStatus.RELEASED
    assert await held_now(team(admin)) == (0, units("20.00"))
    assert (await holds.release_hold(held_hold.id)).status is HoldStatus.RELEASED  # again: same
    with pytest.raises(DomainError) as closed:
        await holds.capture_hold(held_hold.id, units("1.00"))
    assert closed.value.code is ErrorCode.HOLD_CLOSED
    captured = await hold(admin.team_id, "1.00")
    await holds.capture_hold(captured.id, units("1.00"))
    with pytest.raises(DomainError) as closed:
        await holds.release_hold(captured.id)
    assert closed.value.code is ErrorCode.HOLD_CLOSED
    await assert_audit_clean()


async def test_a_replayed_key_answers_its_hold_and_other_parameters_are_refused(
    admin: Actor,
) -> None:
    await give(team(admin), "20.00")
    first = await hold(admin.team_id, "4.00", "stream-1")
    assert (await hold(admin.team_id, "4.00", "stream-1")).id == first.id
    with pytest.raises(DomainError) as reused:
        await hold(admin.team_id, "4.01", "stream-1")
    assert reused.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    with pytest.raises(DomainError) as reused:
        await hold(admin.team_id, "4.00", "stream-1", ttl=60)
    assert reused.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await held_now(team(admin)) == (units("4.00"), units("16.00"))
    await assert_audit_clean()


async def test_expiry_frees_it_through_the_sweeper(admin: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "20.00", ttl=60)
    clock.advance(timedelta(seconds=59))
    assert await sweeper.sweep_once() == 0
    assert await held_now(team(admin)) == (units("20.00"), 0)
    clock.advance(timedelta(seconds=1))
    # Read before any write: an expired hold no longer counts.
    assert await held_now(team(admin)) == (0, units("20.00"))
    assert await sweeper.sweep_once() == 1
    stored = await Hold.get(id=held_hold.id)
    assert stored.status is HoldStatus.EXPIRED
    assert (await CreditAccount.get(team_id=team(admin))).held == 0
    assert await sweeper.sweep_once() == 0  # written once
    await assert_audit_clean()


async def test_expiry_frees_it_at_the_next_use(admin: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "20.00", ttl=60)
    assert not await use(team(admin), "5.00")
    clock.advance(timedelta(seconds=61))
    assert await use(team(admin), "5.00")  # the usage's lock expired the hold first
    stored = await Hold.get(id=held_hold.id)
    assert stored.status is HoldStatus.EXPIRED
    assert (await CreditAccount.get(team_id=team(admin))).held == 0
    with pytest.raises(DomainError) as closed:
        await holds.capture_hold(held_hold.id, units("1.00"))
    assert closed.value.code is ErrorCode.HOLD_CLOSED
    assert (await holds.release_hold(held_hold.id)).status is HoldStatus.EXPIRED
    await assert_audit_clean()


async def test_a_hold_due_when_its_capture_locks_the_team_is_closed(admin: Actor) -> None:
    """The capture's own lock writes the expiry: the hold it then reads is EXPIRED."""
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "20.00", ttl=60)
    clock.advance(timedelta(seconds=61))
    with pytest.raises(DomainError) as closed:
        await holds.capture_hold(held_hold.id, units("1.00"), team_id=team(admin))
    assert closed.value.code is ErrorCode.HOLD_CLOSED
    assert (await holds.release_hold(held_hold.id)).status is HoldStatus.EXPIRED
    assert (await CreditAccount.get(team_id=team(admin))).held == 0
    assert await UsageRecord.filter(team_id=team(admin)).count() == 0
    await assert_audit_clean()


async def test_a_hold_is_found_by_its_team_and_id_or_by_its_id_alone(
    admin: Actor, api: Api
) -> None:
    other = await sign_up(api, "other@example.com")
    await give(team(admin), "20.00")
    first = await hold(admin.team_id, "3.00", "one")
    second = await hold(admin.team_id, "4.00", "two")
    with pytest.raises(NotFound):  # another team's id answers like an unknown one
        await holds.capture_hold(first.id, units("1.00"), team_id=team(other))
    with pytest.raises(NotFound):
        await holds.release_hold(first.id, team_id=uuid.uuid4())
    capture = await holds.capture_hold(first.id, units("1.00"), team_id=team(admin))
    assert capture.hold.status is HoldStatus.CAPTURED
    assert (await holds.release_hold(second.id)).status is HoldStatus.RELEASED
    assert await held_now(team(admin)) == (0, units("19.00"))
    await assert_audit_clean()


async def test_a_capture_that_credits_no_longer_cover_leaves_the_hold_held(admin: Actor) -> None:
    await give(team(admin), "10.00", expires_at=clock.now() + timedelta(seconds=30))
    held_hold = await hold(admin.team_id, "4.00", ttl=600)
    clock.advance(timedelta(seconds=31))  # the credits expire, the hold does not
    with pytest.raises(DomainError) as refused:
        await holds.capture_hold(held_hold.id, units("4.00"))
    assert refused.value.code is ErrorCode.CREDITS_EXHAUSTED
    assert (await Hold.get(id=held_hold.id)).status is HoldStatus.HELD
    assert (await holds.release_hold(held_hold.id)).status is HoldStatus.RELEASED
    await assert_audit_clean()


async def test_another_teams_hold_is_not_found(admin: Actor, operator: Actor) -> None:
    await give(team(admin), "20.00")
    held_hold = await hold(admin.team_id, "5.00")
    with pytest.raises(NotFound):
        await holds.capture_hold(held_hold.id, units("1.00"), team_id=team(operator))
    with pytest.raises(NotFound):
        await holds.release_hold(held_hold.id, team_id=team(operator))
    for unknown in (uuid.uuid4(), "not-an-id", "\x00"):
        with pytest.raises(NotFound):
            await holds.release_hold(unknown)
    assert (await Hold.get(id=held_hold.id)).status is HoldStatus.HELD
    await assert_audit_clean()


async def test_usage_may_not_take_a_capture_key(admin: Actor) -> None:
    await give(team(admin), "20.00")
    request = credits_service.UsageRequest(
        team_id=team(admin), amount=units("1.00"), idempotency_key=f"hold:{uuid.uuid4()}"
    )
    (result,) = await credits_service.record_usage([request])
    assert result.error is not None
    assert (result.error.code, result.error.field) == (ErrorCode.INVALID_INPUT, "idempotencyKey")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"idempotency_key": " "}, "idempotencyKey"),
        ({"idempotency_key": "k\x00"}, "idempotencyKey"),
        ({"idempotency_key": "k\ud800"}, "idempotencyKey"),
        ({"expires_in_seconds": 0}, "expiresInSeconds"),
        ({"expires_in_seconds": 86_401}, "expiresInSeconds"),
        ({"description": "x" * 501}, "description"),
        ({"description": "nul\x00"}, "description"),
        ({"dimensions": {f"k{i}": "v" for i in range(11)}}, "dimensions"),
        ({"dimensions": {"bad key": "v"}}, "dimensions"),
        ({"dimensions": {"model": "x" * 257}}, "dimensions"),
        ({"dimensions": {"model": "\udfff"}}, "dimensions"),
        ({"dimensions": {"model": 4}}, "dimensions"),
    ],
)
async def test_bad_holds_are_refused_before_anything_is_stored(
    admin: Actor, changes: dict[str, object], field: str
) -> None:
    await give(team(admin), "20.00")
    fields: dict[str, object] = {
        "team_id": team(admin),
        "amount": units("1.00"),
        "idempotency_key": "k",
    } | changes
    with pytest.raises(DomainError) as refused:
        await holds.create_hold(holds.HoldRequest(**fields))  # type: ignore[arg-type]
    assert refused.value.field == field
    assert await Hold.all().count() == 0
