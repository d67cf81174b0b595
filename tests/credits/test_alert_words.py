"""Alert texts read as people write money and months (the console's rule, in Python)."""

from __future__ import annotations

import pytest

from app.kit.clock import month_text
from app.kit.money import dollars_text, parse


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "$0.00"),
        ("8.12345678", "$8.12"),
        ("57.87654322", "$57.88"),
        ("0.005", "$0.01"),
        ("0.00499999", "$0.00"),
        ("1234567.5", "$1,234,567.50"),
    ],
)
def test_dollars_text_rounds_to_cents_half_up(amount: str, text: str) -> None:
    assert dollars_text(parse(amount, allow_zero=True)) == text


def test_dollars_text_of_a_negative_amount() -> None:
    assert dollars_text(-parse("2.5")) == "-$2.50"
    assert dollars_text(-1) == "$0.00"  # less than half a cent owed is nothing shown


def test_month_text_names_the_month() -> None:
    assert month_text("2026-12") == "December 2026"
    assert month_text("2027-01") == "January 2027"
