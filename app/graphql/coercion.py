"""Variable coercion compiled per input type, for the compiled plans (fastpath.py).

graphql-core's `coerce_input_value` re-dispatches on the type (non-null? list? input
object? leaf?) at every level of every value, and each variable first goes through
`input_is_nested_too_deeply`. A `recordUsageBatch` of 1,000 events pays that for each
event and each of its fields. Here the dispatch is done once per type: `compile_coercer`
returns a function with the same result as `coerce_input_value(value, type_)`, including
`Undefined` for anything invalid. tests/test_coercion.py compares the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    assert_leaf_type,
    is_input_object_type,
    is_list_type,
    is_non_null_type,
)
from graphql.language.parser import MAX_NESTING_DEPTH
from graphql.pyutils import Undefined, is_iterable
from graphql.type.definition import is_required_input_field
from graphql.utilities.coerce_input_value import coerce_default_value, coerce_input_value

Coercer = Callable[[Any], Any]

_objects: dict[GraphQLInputObjectType, Coercer] = {}


def compile_coercer(type_: GraphQLInputType) -> Coercer:
    """`value -> coerce_input_value(value, type_)`, with the type's dispatch done once."""
    if is_non_null_type(type_):
        present = _present(type_.of_type)

        def non_null(value: Any) -> Any:
            if value is None or value is Undefined:
                return Undefined
            return present(value)

        return non_null
    present = _present(type_)

    def nullable(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        return present(value)

    return nullable


def _present(type_: GraphQLInputType) -> Coercer:
    """The coercer of a nullable type for a value that is neither null nor undefined."""
    if is_list_type(type_):
        coerce_item = compile_coercer(type_.of_type)

        def items(value: Any) -> Any:
            if not is_iterable(value):
                # Lists accept a non-list value as a list of one.
                item = coerce_item(value)
                return Undefined if item is Undefined else [item]
            coerced = []
            for item_value in value:
                item = coerce_item(item_value)
                if item is Undefined:
                    return Undefined
                coerced.append(item)
            return coerced

        return items
    if is_input_object_type(type_):
        return _input_object(type_)
    parse = assert_leaf_type(type_).coerce_input_value

    def leaf(value: Any) -> Any:
        try:
            return parse(value)
        except Exception:  # noqa: BLE001 - invalid, as graphql-core answers it
            return Undefined

    return leaf


def _input_object(type_: GraphQLInputObjectType) -> Coercer:
    found = _objects.get(type_)
    if found is not None:
        return found
    if type_.is_one_of:
        # Rare, with rules of their own: graphql-core's function as it is.
        return lambda value: coerce_input_value(value, type_)
    fields = type_.fields
    out_type = type_.out_type
    plan: list[tuple[str, str, Any, bool, Coercer]] = []

    def input_object(value: Any) -> Any:
        if not isinstance(value, dict):
            return Undefined
        for name, field_value in value.items():
            if field_value is not Undefined and name not in fields:
                return Undefined
        coerced: dict[str, Any] = {}
        for name, key, field, required, coerce_field in plan:
            field_value = value.get(name, Undefined)
            if field_value is Undefined:
                if required:
                    return Undefined
                default = coerce_default_value(field)
                if default is not Undefined:
                    coerced[key] = default
                continue
            item = coerce_field(field_value)
            if item is Undefined:
                return Undefined
            coerced[key] = item
        return out_type(coerced)

    # Registered before its fields compile, so an input type that contains itself ends.
    _objects[type_] = input_object
    for name, field in fields.items():
        required = is_required_input_field(field)
        plan.append((name, field.out_name or name, field, required, compile_coercer(field.type)))
    return input_object


def may_nest_too_deeply(type_: GraphQLInputType) -> bool:
    """Whether a value of this type can nest past graphql-core's limit (its
    `input_is_nested_too_deeply` check is needed): only when the type itself is
    recursive or deeper than the limit, since the check follows the type."""
    depth = _depth(type_, frozenset())
    return depth is None or depth > MAX_NESTING_DEPTH


def _depth(type_: GraphQLInputType, seen: frozenset[GraphQLInputObjectType]) -> int | None:
    if is_non_null_type(type_):
        return _depth(type_.of_type, seen)
    if is_list_type(type_):
        inner = _depth(type_.of_type, seen)
        return None if inner is None else inner + 1
    if is_input_object_type(type_):
        if type_ in seen:
            return None
        deepest = 0
        for field in type_.fields.values():
            inner = _depth(field.type, seen | {type_})
            if inner is None:
                return None
            deepest = max(deepest, inner)
        return deepest + 1
    return 0
