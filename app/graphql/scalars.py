"""The `Decimal` scalar: dollars as decimal strings, never floats."""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode


def _parse_value(value: Any) -> str:
    # Services validate the text and answer INVALID_AMOUNT: a malformed amount is a
    # UserError on the field, not a request-level failure.
    if isinstance(value, bool) or value is None:
        return ""
    return str(value)


def _parse_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> str:
    # A literal 25.10 keeps its exact text: graphql-core hands over the source digits.
    if isinstance(node, (StringValueNode, FloatValueNode, IntValueNode)):
        return node.value
    return ""


Decimal = NewType("Decimal", str)

DECIMAL_SCALAR = strawberry.scalar(
    name="Decimal",
    description='US dollars as a decimal string, e.g. "25.00" or "0.00001234". Never a float.',
    serialize=str,
    parse_value=_parse_value,
    parse_literal=_parse_literal,
)
