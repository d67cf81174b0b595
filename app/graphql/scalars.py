"""The `Decimal` scalar: dollars as decimal strings, never floats."""

from __future__ import annotations

from decimal import Decimal as PyDecimal
from typing import Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode


def _parse_value(value: Any) -> Any:
    # Handed over as it came: `kit/money.py` `parse` takes only a plain decimal string and
    # answers INVALID_AMOUNT on the field for anything else (a JSON number included), so
    # a malformed amount is a UserError, not a request-level failure.
    return value


def _parse_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> Any:
    if isinstance(node, StringValueNode):
        return node.value
    # A literal 25.10 is a number, not a decimal string: exact, and refused the same way.
    if isinstance(node, (FloatValueNode, IntValueNode)):
        return PyDecimal(node.value)
    return None


Decimal = NewType("Decimal", str)

DECIMAL_SCALAR = strawberry.scalar(
    name="Decimal",
    description='US dollars as a decimal string, e.g. "25.00" or "0.00001234". Never a float.',
    serialize=str,
    parse_value=_parse_value,
    parse_literal=_parse_literal,
)
