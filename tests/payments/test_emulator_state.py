"""The development emulator keeps its objects in a state file: after a restart with the same
file, a saved card still pays and a bank debit pending at the stop still settles."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.payments.emulator import StripeEmulator
from app.payments.stripe import InvalidPaymentMethod, StripeGateway
from tests.support.payments import STRIPE_API_KEY, emulator_client


@pytest.fixture
async def restartable(tmp_path: Path) -> AsyncIterator[tuple[StripeEmulator, Path]]:
    state = tmp_path / "data" / "stripe-emulator.pickle"
    emulator = StripeEmulator(state_file=state, ach_settle_seconds=3.0)
    emulator.start()
    yield emulator, state
    emulator.stop()


async def _restart(emulator: StripeEmulator) -> None:
    port = emulator.port
    emulator.stop()
    emulator.start(port)


async def _bank_method(base_url: str, account_number: str) -> str:
    async with emulator_client(base_url) as http:
        response = await http.post(
            "/v1/payment_methods",
            data={
                "type": "us_bank_account",
                "us_bank_account[routing_number]": "110000000",
                "us_bank_account[account_number]": account_number,
                "billing_details[name]": "Ada Lovelace",
            },
        )
    assert response.status_code == 200, response.text
    pm_id: str = response.json()["id"]
    return pm_id


async def test_a_saved_card_still_pays_after_a_restart(
    restartable: tuple[StripeEmulator, Path],
) -> None:
    emulator, state = restartable
    gateway = StripeGateway(STRIPE_API_KEY, emulator.url)
    try:
        customer = await gateway.create_customer("team-1", "Team One", "a@example.com")
        card = await gateway.attach_payment_method("pm_card_visa", customer)
        assert state.exists()

        await _restart(emulator)

        paid = await gateway.create_payment_intent(
            1500,
            customer,
            card.id,
            off_session=True,
            payment_method_types=["card"],
            metadata={},
            idempotency_key="restart-1",
        )
        assert paid.status == "succeeded"
        assert (await gateway.retrieve_payment_method(card.id)).customer == customer
    finally:
        await gateway.aclose()


async def test_without_a_state_file_a_restart_forgets() -> None:
    """The test suite's emulator (memory only) is the contrast: nothing survives."""
    emulator = StripeEmulator(ach_settle_seconds=1.0)
    emulator.start()
    gateway = StripeGateway(STRIPE_API_KEY, emulator.url)
    try:
        customer = await gateway.create_customer("team-1", "Team One", None)
        card = await gateway.attach_payment_method("pm_card_visa", customer)
        await _restart(emulator)
        with pytest.raises(InvalidPaymentMethod):
            await gateway.retrieve_payment_method(card.id)
    finally:
        await gateway.aclose()
        emulator.stop()


def _charge_statuses(state: Path) -> list[str]:
    """The charges' statuses in the emulator's state file (localstripe's own classes)."""
    with state.open("rb") as f:
        objects = pickle.load(f)
    return [obj.status for key, obj in objects.items() if key.startswith("charge:")]


async def test_a_debit_pending_at_the_stop_settles_after_the_restart(
    restartable: tuple[StripeEmulator, Path],
) -> None:
    emulator, state = restartable
    gateway = StripeGateway(STRIPE_API_KEY, emulator.url)
    try:
        customer = await gateway.create_customer("team-1", "Team One", None)
        pm = await _bank_method(emulator.url, "000123456789")
        bank = await gateway.attach_payment_method(pm, customer)
        assert (bank.type, bank.brand, bank.last4) == (
            "us_bank_account",
            "STRIPE TEST BANK",
            "6789",
        )
        intent = await gateway.create_payment_intent(
            2500,
            customer,
            bank.id,
            off_session=True,
            payment_method_types=["us_bank_account"],
            metadata={},
            idempotency_key="restart-2",
        )
        assert intent.status == "processing"

        port = emulator.port
        emulator.stop()
        # Pending when it stopped (the state file says so), whatever the machine's speed.
        assert _charge_statuses(state) == ["pending"]
        emulator.start(port)
        for _ in range(300):
            status = (await gateway.retrieve_payment_intent(intent.id)).status
            if status != "processing":
                break
            await asyncio.sleep(0.1)
        assert status == "succeeded"
    finally:
        await gateway.aclose()


async def test_a_failing_test_account_ends_with_stripes_failure_code(
    restartable: tuple[StripeEmulator, Path],
) -> None:
    emulator, _ = restartable
    gateway = StripeGateway(STRIPE_API_KEY, emulator.url)
    try:
        customer = await gateway.create_customer("team-1", "Team One", None)
        bank = await gateway.attach_payment_method(
            await _bank_method(emulator.url, "000222222227"), customer
        )
        intent = await gateway.create_payment_intent(
            2500,
            customer,
            bank.id,
            off_session=True,
            payment_method_types=["us_bank_account"],
            metadata={},
            idempotency_key="fails-1",
        )
        assert intent.status == "processing"
        for _ in range(300):
            after = await gateway.retrieve_payment_intent(intent.id)
            if after.status != "processing":
                break
            await asyncio.sleep(0.1)
        assert after.status == "requires_payment_method"
        assert after.last_payment_error_message == (
            "The customer's account has insufficient funds to cover this payment."
        )
    finally:
        await gateway.aclose()


async def test_an_unreadable_state_file_is_kept_aside_and_the_emulator_starts_empty(
    tmp_path: Path,
) -> None:
    state = tmp_path / "stripe-emulator.pickle"
    state.write_bytes(b"not a pickle")
    emulator = StripeEmulator(state_file=state, ach_settle_seconds=1.0)
    emulator.start()
    try:
        async with emulator_client(emulator.url) as http:
            response = await http.get("/v1/customers")
        assert response.status_code == 200
        assert response.json()["data"] == []
    finally:
        emulator.stop()
    assert (tmp_path / "stripe-emulator.pickle.unreadable").read_bytes() == b"not a pickle"
