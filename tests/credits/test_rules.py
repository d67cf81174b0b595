"""credits.rules: each billing rule of the usage gate on its own (no database)."""

from __future__ import annotations

import pytest

from app.credits.rules import BillingStatus, billing_status, invoiced_headroom, refusal
from app.kit.errors import ErrorCode


@pytest.mark.parametrize(
    ("limit", "used", "suspended", "headroom"),
    [
        (1000, 0, False, 1000),
        (1000, 400, False, 600),
        (1000, 1000, False, 0),
        (1000, 1500, False, 0),  # a lowered limit below what was used: never negative
        (0, 0, False, 0),
        (1000, 0, True, 0),  # suspended: none at all
    ],
)
def test_invoiced_headroom(limit: int, used: int, suspended: bool, headroom: int) -> None:
    assert invoiced_headroom(limit, used, suspended) == headroom


def test_refusal_without_a_limit_is_credits_exhausted() -> None:
    error = refusal(0)
    assert error.code is ErrorCode.CREDITS_EXHAUSTED
    assert error.message == "Not enough credits for this usage."
    assert error.field == "amount"


def test_refusal_with_a_limit_is_invoiced_limit_reached() -> None:
    error = refusal(500)
    assert error.code is ErrorCode.INVOICED_LIMIT_REACHED
    assert error.message == "Not enough credits and the invoiced spending limit is reached."
    assert error.field == "amount"


@pytest.mark.parametrize(
    ("total", "limit", "headroom", "status"),
    [
        (1, 0, 0, BillingStatus.ACTIVE),  # credits left: active whatever the limit
        (1, 1000, 0, BillingStatus.ACTIVE),
        (0, 0, 0, BillingStatus.CREDITS_EXHAUSTED),
        (0, 1000, 1, BillingStatus.ACTIVE),  # invoiced headroom left
        (0, 1000, 0, BillingStatus.INVOICED_LIMIT_REACHED),  # used up, or suspended
    ],
)
def test_billing_status(total: int, limit: int, headroom: int, status: BillingStatus) -> None:
    assert billing_status(total, limit, headroom) is status


def test_billing_status_values_are_the_api_names() -> None:
    assert [s.value for s in BillingStatus] == [
        "ACTIVE",
        "CREDITS_EXHAUSTED",
        "INVOICED_LIMIT_REACHED",
    ]
    assert BillingStatus.ACTIVE == "ACTIVE"  # a StrEnum: compares and serialises as text
