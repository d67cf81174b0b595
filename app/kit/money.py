"""Money as integers of 1e-8 USD; Decimal strings at the edges; never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from app.kit.errors import DomainError, ErrorCode

UNITS_PER_DOLLAR = 100_000_000
UNITS_PER_CENT = 1_000_000
# $10 billion: far beyond any real amount, and sums of many stay inside BIGINT (9.2e18).
MAX_UNITS = 10**18


class InvalidAmount(ValueError):
    """An amount that is malformed, out of range or too precise."""


def parse(value: object, *, places: int = 8, allow_zero: bool = False) -> int:
    """Parse a decimal string of dollars into units, exactly.

    Rejects NaN, infinities, exponents that overflow, more than `places`
    decimals, negatives, and (unless `allow_zero`) zero.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InvalidAmount('amount must be a decimal string such as "25.00"')
    text = str(value).strip()
    if not text or len(text) > 40:
        raise InvalidAmount('amount must be a decimal string such as "25.00"')
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidAmount(f"not a decimal number: {text[:40]!r}") from None
    if not amount.is_finite():
        raise InvalidAmount("amount must be a finite number")
    if amount.is_signed() and amount != 0:
        raise InvalidAmount("amount must not be negative")
    if amount.adjusted() > 12:
        raise InvalidAmount("amount is too large")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -places and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise InvalidAmount(f"amount takes at most {places} decimal places")
    units = int(amount.scaleb(8))
    if units > MAX_UNITS:
        raise InvalidAmount("amount is too large")
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
