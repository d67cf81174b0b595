"""Compiled variable coercion answers exactly as graphql-core's `coerce_input_value`."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from graphql import (
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLString,
)
from graphql.language.parser import MAX_NESTING_DEPTH
from graphql.pyutils import Undefined
from graphql.utilities.coerce_input_value import coerce_input_value
from hypothesis import given, settings

from app.graphql.coercion import compile_coercer, may_nest_too_deeply
from app.graphql.schema import schema

GRAPHQL = schema._schema
INPUT_TYPES = sorted(
    (t for t in GRAPHQL.type_map.values() if isinstance(t, GraphQLInputObjectType)),
    key=lambda t: t.name,
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from(
        [
            "0.0001",
            "25.00",
            "-1",
            "abc",
            "",
            "1e5",
            "FREE",
            "PREPAID",
            "nope",
            "2026-11-28T10:00:00Z",
            "2026-13-01",
            "0d8a5b6e-3f1c-4a57-9d7e-0f3b2c1a9e44",
            "admin@example.com",
        ]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def _object_values(type_: GraphQLInputObjectType) -> st.SearchStrategy[Any]:
    names = [*type_.fields, "unknown"]
    return st.dictionaries(st.sampled_from(names), _VALUES, max_size=len(names))


def _wrapped(type_: GraphQLInputObjectType) -> list[GraphQLInputType]:
    return [
        type_,
        GraphQLNonNull(type_),
        GraphQLList(GraphQLNonNull(type_)),
        GraphQLNonNull(GraphQLList(type_)),
    ]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_every_input_type_of_the_schema(data: st.DataObject) -> None:
    type_ = data.draw(st.sampled_from(INPUT_TYPES))
    one = data.draw(_object_values(type_))
    value = data.draw(st.sampled_from([one, [one], [one, one], None, "text", 7]))
    for wrapped in _wrapped(type_):
        expected = coerce_input_value(value, wrapped)
        assert compile_coercer(wrapped)(value) == expected, (wrapped, value)


def test_valid_usage_events_coerce_to_the_same_inputs() -> None:
    (batch,) = [t for t in INPUT_TYPES if t.name == "RecordUsageInput"]
    events = [
        {"teamId": "t1", "amount": "0.0001", "idempotencyKey": "k1"},
        {"teamId": "t2", "amount": "1.5", "idempotencyKey": "k2", "description": None},
        {"teamId": "t3", "amount": "2", "idempotencyKey": "k3", "occurredAt": "2026-11-28T10:00:00Z"},
    ]  # fmt: skip
    wrapped = GraphQLNonNull(GraphQLList(GraphQLNonNull(batch)))
    coerced = compile_coercer(wrapped)(events)
    assert coerced is not Undefined
    assert coerced == coerce_input_value(events, wrapped)
    assert compile_coercer(wrapped)([*events, {"teamId": "t4"}]) is Undefined


def test_a_recursive_input_type_compiles_and_keeps_the_depth_check() -> None:
    node = GraphQLInputObjectType(
        "Node",
        lambda: {
            "value": GraphQLInputField(GraphQLNonNull(GraphQLInt)),
            "label": GraphQLInputField(GraphQLString, default_value="none"),
            "next": GraphQLInputField(node),
        },
    )
    value = {"value": 1, "next": {"value": 2, "next": {"value": "x"}}}
    assert compile_coercer(node)(value) == coerce_input_value(value, node) == Undefined
    value["next"]["next"] = {"value": 3}  # type: ignore[index]
    assert compile_coercer(node)(value) == coerce_input_value(value, node)
    assert compile_coercer(node)(value)["label"] == "none"
    assert may_nest_too_deeply(node)
    shallow = GraphQLList(
        GraphQLNonNull(GraphQLInputObjectType("Flat", {"n": GraphQLInputField(GraphQLInt)}))
    )
    assert not may_nest_too_deeply(shallow)
    deep: GraphQLInputType = GraphQLInt
    for _ in range(MAX_NESTING_DEPTH + 1):
        deep = GraphQLList(deep)
    assert may_nest_too_deeply(deep)
