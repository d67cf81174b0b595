"""Execution of plain leaf objects without per-field machinery.

A usage series answers hundreds of buckets, each a handful of scalars read straight off
an object. graphql-core resolves every one of those fields on its own: a resolver call,
a resolve-info object, a path, a completion step; for a 90-day series grouped by model
that was most of the request (docs/usage-history.md). An object whose selected fields
are all basic Strawberry fields (no resolver, no arguments, no field extensions)
returning scalars or enums is completed here in one loop, with the same serializers.
Anything unusual (a null where the schema says non-null, a failing serializer, a
middleware) takes graphql-core's path, which reports it as it always does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphql import (
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    is_leaf_type,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF


class _Leaf(NamedTuple):
    response_name: str
    field: StrawberryField | None  # None: __typename
    leaf: GraphQLLeafType | None
    non_null: bool


_Plan = tuple[_Leaf, ...]


def _leaf_of(parent_type: GraphQLObjectType, response_name: str, details: Any) -> _Leaf | None:
    node = details[0].node
    name = node.name.value
    if node.arguments or node.selection_set is not None:
        return None
    if name == "__typename":
        return _Leaf(response_name, None, None, True)
    graphql_field = parent_type.fields.get(name)
    if graphql_field is None or graphql_field.args:
        return None
    # Strawberry marks the resolvers of basic fields (an attribute read) as default.
    if not getattr(graphql_field.resolve, "_is_default", False):
        return None
    field = graphql_field.extensions.get(_BACKREF)
    if not isinstance(field, StrawberryField) or not field.is_basic_field:
        return None
    return_type = graphql_field.type
    non_null = isinstance(return_type, GraphQLNonNull)
    inner = return_type.of_type if non_null else return_type
    if not is_leaf_type(inner):
        return None
    return _Leaf(response_name, field, inner, non_null)


def plan_of(parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any]) -> _Plan | None:
    """How to complete these fields of `parent_type` in one loop, or None if one of
    them needs graphql-core's full path."""
    leaves = []
    for response_name, details in grouped_field_set.items():
        leaf = _leaf_of(parent_type, response_name, details)
        if leaf is None:
            return None
        leaves.append(leaf)
    return tuple(leaves)


def complete_plain(
    parent_type: GraphQLObjectType, plan: _Plan, source: Any
) -> dict[str, Any] | None:
    """The fields' values, serialized; None when graphql-core should take over."""
    results: dict[str, Any] = {}
    for response_name, field, leaf, non_null in plan:
        if field is None:
            results[response_name] = parent_type.name
            continue
        value = field.default_resolver(source, field.python_name)
        if value is None:
            if non_null:
                return None
            results[response_name] = None
            continue
        assert leaf is not None
        serialized = leaf.serialize(value)
        if serialized is Undefined or serialized is None:
            return None
        results[response_name] = serialized
    return results


class PlainObjects(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution, with plain leaf objects completed in one loop."""

    _plans: dict[int, tuple[dict[str, Any], _Plan | None]] | None = None

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        manager = self.middleware_manager
        if manager is None or not manager.middlewares:
            plans = self._plans
            if plans is None:
                plans = self._plans = {}
            # The grouped field set is memoized per (type, selection) for the execution,
            # so every item of a list shares it; kept in the entry so its id stays unique.
            entry = plans.get(id(grouped_field_set))
            if entry is None or entry[0] is not grouped_field_set:
                entry = (grouped_field_set, plan_of(parent_type, grouped_field_set))
                plans[id(grouped_field_set)] = entry
            plan = entry[1]
            if plan is not None:
                try:
                    results = complete_plain(parent_type, plan, source_value)
                except Exception:  # noqa: BLE001 - graphql-core reports it in place
                    results = None
                if results is not None:
                    return results
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )
