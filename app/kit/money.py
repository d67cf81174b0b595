"""Money as integers of 1e-8 USD; Decimal strings at the edges; never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from app.kit.errors import DomainError, ErrorCode

UNITS_PER_DOLLAR = 100_000_000
UNITS_PER_CENT = 1_000_000
# The most one team's credits may hold, and so the most any single amount may be:
# $1,000,000,000.00. BIGINT holds 9.2e18 units ($92 billion), so balances, a month's
# invoiced total and any sum of capped amounts stay far inside it (docs/inputs.md).
MAX_BALANCE = 1_000_000_000 * UNITS_PER_DOLLAR
MAX_UNITS = MAX_BALANCE
# ASCII digits only (`\d` would take Arabic-Indic or full-width ones), one optional
# point with digits on both sides: no sign, exponent, underscore, space, NaN or infinity.
_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)
_SHAPE = 'amount must be a decimal string such as "25.00"'
# Longer text is refused unread: no amount within MAX_UNITS needs 40 characters.
_MAX_TEXT = 40


class InvalidAmount(ValueError):
    """An amount that is malformed, out of range or too precise."""


def parse(value: object, *, places: int = 8, allow_zero: bool = False) -> int:
    """Parse a plain decimal string of dollars ("25", "25.00", "0.00001234") into units.

    Anything else is refused: JSON numbers and other types, non-ASCII digits, signs,
    exponents, underscores, surrounding spaces, more than `places` decimals (trailing
    zeros aside), more than `MAX_UNITS`, and (unless `allow_zero`) zero.
    """
    if not isinstance(value, str):
        kind = "a number" if isinstance(value, int | float | Decimal) else "another type"
        raise InvalidAmount(f"{_SHAPE}, not {kind}")
    match = _DECIMAL.fullmatch(value) if len(value) <= _MAX_TEXT else None
    if match is None:
        raise InvalidAmount(f"{_SHAPE}, not {value[:_MAX_TEXT]!r}")
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    if len(fraction) > places:
        raise InvalidAmount(f"amount takes at most {places} decimal places")
    units = int(whole) * UNITS_PER_DOLLAR + int(fraction.ljust(8, "0") or "0")
    if units > MAX_UNITS:
        raise InvalidAmount(f"amount is at most {format_units(MAX_UNITS)}")
    if units == 0 and not allow_zero:
        raise InvalidAmount("amount must be greater than zero")
    return units


def format_units(units: int) -> str:
    """Units as a dollar string with at least 2 and at most 8 decimals: 2500000000 -> "25.00"."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS_PER_DOLLAR)
    digits = f"{frac:08d}".rstrip("0")
    if len(digits) < 2:
        digits = digits.ljust(2, "0")
    return f"{sign}{whole}.{digits}"


def dollars_text(units: int) -> str:
    """Units as people read dollars in messages: "$1,234.57" (cents rounded half up).

    The console and the widget show amounts the same way (docs/console.md)."""
    cents = units_to_cents_half_up(abs(units))
    sign = "-" if units < 0 and cents else ""
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def units_to_cents_half_up(units: int) -> int:
    """Round units to whole cents, half away from zero (used once per invoice line)."""
    return int((Decimal(units) / UNITS_PER_CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cents_to_units(cents: int) -> int:
    return cents * UNITS_PER_CENT


def units_to_cents_exact(units: int) -> int:
    """Units that are a whole number of cents, as cents; raises if not exact."""
    cents, rest = divmod(units, UNITS_PER_CENT)
    if rest:
        raise InvalidAmount("amount takes at most 2 decimal places")
    return cents


def parse_field(value: object, field: str, *, places: int = 8, allow_zero: bool = False) -> int:
    """`parse` for an input field: an InvalidAmount becomes a DomainError naming the field."""
    try:
        return parse(value, places=places, allow_zero=allow_zero)
    except InvalidAmount as exc:
        raise DomainError(ErrorCode.INVALID_AMOUNT, str(exc), field) from None
