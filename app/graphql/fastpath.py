"""Compiled operations: the hot documents skip Strawberry's per-request machinery.

The metering gateway sends one or two documents thousands of times a second
(`recordUsage`, `recordUsageBatch`) and balance widgets poll `team { credits }`. For
those, the generic path spends most of its CPU in work whose outcome never changes for
the same document text: parsing, validation, the extension hooks' context managers,
graphql-core's execution-context setup and field collection. So each POST body's
document is compiled once (`compile_plan`, cached by its text): parsed with the token
limit, checked against the cost budget and every validation rule, and accepted only
when it is one query or mutation with one root field from `ROOT_FIELDS`, with no
fragments, directives or abstract types anywhere. Everything else (and any request
this module cannot answer exactly as Strawberry would) goes to Strawberry unchanged.

A plan runs the schema's own field resolvers, the ones Strawberry built (so argument
conversion, `payload_errors`, rate limits and authorization are the same code), and
completes values as graphql-core does: leaf serialization, `is_type_of`, null
propagation to the nearest nullable field, located errors. Errors are masked by the same
`ApiErrors` rules and counted by the same metrics. tests/test_fastpath.py runs each
document through both paths and compares the responses byte for byte.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import MISSING, dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    default_field_resolver,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
    located_error,
    parse,
    specified_rules,
    validate,
)
from graphql.error import GraphQLSyntaxError
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    get_argument_values,
    input_is_nested_too_deeply,
)
from graphql.pyutils import Path, Undefined, is_awaitable
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.http import GraphQLHTTPResponse
from strawberry.relay.types import GlobalID
from strawberry.types import Info
from strawberry.types.arguments import _is_leaf_type
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

from app.graphql.coercion import Coercer, compile_coercer, may_nest_too_deeply
from app.graphql.errors import ApiErrors
from app.graphql.limits import MAX_TOKENS, budget_errors
from app.graphql.schema import LIMIT_RULES
from app.graphql.schema import schema as strawberry_schema
from app.metrics import child, graphql_latency, graphql_requests, operation_label

# Root fields served by plans: the gateway's mutations and the widgets' read.
ROOT_FIELDS = frozenset({"recordUsage", "recordUsageBatch", "team", "viewer"})
PLAN_CACHE_SIZE = 1000
# Longer documents are not planned (nor kept as cache keys): the hot ones are short.
MAX_PLANNED_DOCUMENT = 4096


@dataclass(frozen=True, slots=True)
class Plan:
    """One compiled document: its operation and single root field."""

    operation: OperationDefinitionNode
    root_type: GraphQLObjectType
    field_node: FieldNode
    field_def: GraphQLField
    kind: str
    label: str
    # The variables' types, resolved once (graphql-core does it on every request), and
    # each one's coercer (with whether its value needs graphql-core's depth check).
    signatures: tuple[GraphQLVariableSignature, ...]
    coercers: tuple[tuple[Coercer, bool], ...]


class _Null(Exception):
    """A non-null field completed to null: its parent becomes null in turn."""


def _walk_plain(selection_set: SelectionSetNode | None, parent: GraphQLOutputType) -> bool:
    """True when every selection below is a plain field of an object or leaf type."""
    named = get_named_type(parent)
    if selection_set is None:
        return is_leaf_type(named)
    if not is_object_type(named):
        return False
    assert isinstance(named, GraphQLObjectType)
    keys: set[str] = set()
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives:
            return False
        name = selection.name.value
        # Fields sharing a response key merge their selections: left to Strawberry.
        key = selection.alias.value if selection.alias else name
        if key in keys:
            return False
        keys.add(key)
        if name == "__typename":
            continue
        if name.startswith("__"):
            return False
        field_def = named.fields.get(name)
        if field_def is None or not _walk_plain(selection.selection_set, field_def.type):
            return False
    return True


def compile_plan(schema: GraphQLSchema, text: str, operation_name: str | None) -> Plan | None:
    """The plan for a document, or None when Strawberry must run it."""
    try:
        document = parse(text, max_tokens=MAX_TOKENS)
    except GraphQLSyntaxError:
        return None
    if len(document.definitions) != 1:
        return None
    operation = document.definitions[0]
    if not isinstance(operation, OperationDefinitionNode) or operation.directives:
        return None
    if operation_name is not None and (
        operation.name is None or operation.name.value != operation_name
    ):
        return None
    if operation.operation is OperationType.QUERY:
        root_type = schema.query_type
    elif operation.operation is OperationType.MUTATION:
        root_type = schema.mutation_type
    else:
        return None
    if root_type is None or len(operation.selection_set.selections) != 1:
        return None
    field_node = operation.selection_set.selections[0]
    if not isinstance(field_node, FieldNode) or field_node.name.value not in ROOT_FIELDS:
        return None
    if any(v.directives for v in operation.variable_definitions or ()):
        return None
    if not _walk_plain(operation.selection_set, root_type):
        return None
    # The same checks the generic path makes; a document that fails any of them is
    # answered there, with its errors. Introspection is already excluded above.
    rules = (*specified_rules, *LIMIT_RULES, NoSchemaIntrospectionCustomRule)
    if budget_errors(document) or validate(schema, document, rules):
        return None
    signatures = []
    for definition in operation.variable_definitions or ():
        signature = get_variable_signature(schema, definition)
        if isinstance(signature, GraphQLError) or definition.default_value is not None:
            return None  # defaults are rare here: Strawberry applies them
        signatures.append(signature)
    return Plan(
        signatures=tuple(signatures),
        coercers=tuple((compile_coercer(s.type), may_nest_too_deeply(s.type)) for s in signatures),
        operation=operation,
        root_type=root_type,
        field_node=field_node,
        field_def=root_type.fields[field_node.name.value],
        kind=operation.operation.value,
        label=operation_label(
            operation_name or (operation.name.value if operation.name else None), document
        ),
    )


class PlanCache:
    """Plans by (document text, operation name), None remembered too; least recent out."""

    def __init__(self, schema: GraphQLSchema, size: int = PLAN_CACHE_SIZE) -> None:
        self.schema = schema
        self.size = size
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()

    def get(self, text: str, operation_name: str | None) -> Plan | None:
        if len(text) > MAX_PLANNED_DOCUMENT:
            return None
        key = (text, operation_name)
        try:
            plan = self._plans[key]
        except KeyError:
            plan = self._plans[key] = compile_plan(self.schema, text, operation_name)
            if len(self._plans) > self.size:
                self._plans.popitem(last=False)
            return plan
        self._plans.move_to_end(key)
        return plan


# --- arguments: Strawberry's conversion, precomputed per type -----------------------------

Convert = Callable[[Any], Any]
Direct = Callable[[object, "GraphQLResolveInfo[Any]", dict[str, Any]], Any]


def _keep(value: Any) -> Any:
    return value


def _converter(type_: Any, registry: Any, config: Any) -> Convert | None:
    """What strawberry.types.arguments.convert_argument does for `type_`, with the type
    inspection done once; None for what this does not cover (Maybe, GlobalID, custom
    `from_input`), which then takes Strawberry's own path."""
    if isinstance(type_, LazyType):
        return _converter(type_.resolve_type(), registry, config)
    if isinstance(type_, StrawberryMaybe) or type_ is GlobalID:
        return None
    if isinstance(type_, StrawberryOptional):
        return _converter(type_.of_type, registry, config)
    if isinstance(type_, StrawberryList):
        item = _converter(type_.of_type, registry, config)
        if item is None:
            return None
        if item is _keep:
            # Copied: graphql-core hands every request the same default list.
            return lambda value: value if value is None or value is UNSET else list(value)
        return lambda value: value if value is None or value is UNSET else [item(x) for x in value]
    if _is_leaf_type(type_, registry) or has_enum_definition(type_):
        return _keep
    if not has_object_definition(type_):
        return None
    definition = type_.__strawberry_definition__
    if not definition.is_input or definition.from_input is not None:
        return None
    defaults = {
        f.python_name: None
        for f in definition.fields
        if f.default_value is MISSING and f.default_factory is MISSING
    }
    fields: list[tuple[str, str, Convert]] = []
    for f in definition.fields:
        convert = _converter(f.resolve_type(type_definition=definition), registry, config)
        if convert is None:
            return None
        fields.append((config.name_converter.from_field(f), f.python_name, convert))

    def build(value: Any) -> Any:
        if value is None or value is UNSET:
            return value
        kwargs = dict(defaults)
        for graphql_name, python_name, convert in fields:
            if graphql_name in value:
                kwargs[python_name] = convert(value[graphql_name])
        return type_(**kwargs)

    return build


def _direct(field_def: GraphQLField) -> Direct | None:
    """Calls the field's Strawberry resolver as Strawberry would (converted arguments,
    self, root/parent, info), or None when the field needs Strawberry's own wrapper."""
    field = (field_def.extensions or {}).get("strawberry-definition")
    if not isinstance(field, StrawberryField) or field.base_resolver is None or field.extensions:
        return None
    config = strawberry_schema.config
    registry = strawberry_schema.schema_converter.scalar_registry
    arguments: list[tuple[str, str, Convert]] = []
    for argument in field.arguments:
        convert = _converter(argument.type, registry, config)
        if convert is None:
            return None
        arguments.append(
            (config.name_converter.from_argument(argument), argument.python_name, convert)
        )
    resolver = field.base_resolver
    call_resolver: Callable[..., Any] = resolver
    pass_self = resolver.self_parameter is not None
    source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p]
    info_name = resolver.info_parameter.name if resolver.info_parameter else None
    make_info: Callable[..., Info[Any, Any]] = config.info_class

    def call(source: object, info: GraphQLResolveInfo[Any], args: dict[str, Any]) -> Any:
        kwargs = {
            python_name: convert(args[graphql_name])
            for graphql_name, python_name, convert in arguments
            if graphql_name in args
        }
        for name in source_names:
            kwargs[name] = source
        if info_name is not None:
            kwargs[info_name] = make_info(_raw_info=info, _field=field)
        return call_resolver(source, **kwargs) if pass_self else call_resolver(**kwargs)

    return call


def _resolver_for(field_def: GraphQLField) -> Direct | None:
    """How to resolve a field: None for Strawberry's attribute read (a field without a
    resolver or arguments), else a call taking (source, info, arguments)."""
    resolve = field_def.resolve
    if resolve is not None and getattr(resolve, "_is_default", False) and not field_def.args:
        return None
    direct = _direct(field_def)
    if direct is not None:
        return direct
    generic: Callable[..., Any] = resolve or default_field_resolver
    return lambda source, info, args: generic(source, info, **args)


# By id: graphql-core fields compare by value; the schema's fields live as long as it does.
_resolvers: dict[int, Direct | None] = {}


async def _gather(values: Sequence[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*values))


_HELPERS = GraphQLResolveInfoHelpers(gather=_gather, track=lambda _values: None)
_MASK = ApiErrors()


class _Run:
    """One execution of a plan: its variables, context and collected errors."""

    def __init__(
        self, plan: Plan, schema: GraphQLSchema, variables: VariableValues, context: object
    ) -> None:
        self.plan = plan
        self.schema = schema
        self.variables = variables
        self.context = context
        self.errors: list[GraphQLError] = []

    def info(
        self, parent_type: GraphQLObjectType, node: FieldNode, field_def: GraphQLField, path: Path
    ) -> GraphQLResolveInfo[Any]:
        return GraphQLResolveInfo(
            node.name.value,
            [node],
            field_def.type,
            parent_type,
            path,
            self.schema,
            {},
            None,
            self.plan.operation,
            self.variables,
            self.context,
            is_awaitable,
            None,
            _HELPERS,
        )

    async def field(
        self,
        parent_type: GraphQLObjectType,
        source: object,
        node: FieldNode,
        field_def: GraphQLField,
        path: Path,
    ) -> Any:
        """Resolves and completes one field; raises _Null when null must propagate."""
        return_type = field_def.type
        try:
            try:
                resolver = _resolvers[id(field_def)]
            except KeyError:
                resolver = _resolvers[id(field_def)] = _resolver_for(field_def)
            if resolver is None:
                # Strawberry's resolver for a field without one reads the attribute and
                # never looks at its info: build none.
                result = field_def.resolve(source, None)  # type: ignore[misc]
            else:
                info = self.info(parent_type, node, field_def, path)
                result = resolver(
                    source, info, get_argument_values(field_def, node, self.variables)
                )
            if is_awaitable(result):
                result = await result
            return await self.complete(return_type, parent_type, node, field_def, path, result)
        except _Null:
            # A non-null field below failed: this field is null in its place, if it may be.
            if is_non_null_type(return_type):
                raise
            return None
        except Exception as raw:  # noqa: BLE001 - becomes a located GraphQL error
            self.errors.append(located_error(raw, [node], path.as_list()))
            if is_non_null_type(return_type):
                raise _Null from None
            return None

    async def complete(
        self,
        return_type: GraphQLOutputType,
        parent_type: GraphQLObjectType,
        node: FieldNode,
        field_def: GraphQLField,
        path: Path,
        result: Any,
    ) -> Any:
        if isinstance(return_type, GraphQLNonNull):
            completed = await self.complete(
                return_type.of_type, parent_type, node, field_def, path, result
            )
            if completed is None:
                raise TypeError(
                    f"Cannot return null for non-nullable field {parent_type}.{node.name.value}."
                )
            return completed
        if result is None or result is Undefined:
            return None
        if isinstance(return_type, GraphQLList):
            item_type = return_type.of_type
            if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
                raise GraphQLError(
                    "Expected Iterable, but did not find one for field"
                    f" '{parent_type}.{node.name.value}'."
                )
            items = []
            for index, item in enumerate(result):
                item_path = path.add_key(index, None)
                try:
                    items.append(
                        await self.complete(
                            item_type, parent_type, node, field_def, item_path, item
                        )
                    )
                except _Null:
                    if is_non_null_type(item_type):
                        raise
                    items.append(None)
                except Exception as raw:  # noqa: BLE001
                    self.errors.append(located_error(raw, [node], item_path.as_list()))
                    if is_non_null_type(item_type):
                        raise _Null from None
                    items.append(None)
            return items
        if is_leaf_type(return_type):
            coerced = return_type.coerce_output_value(result)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{return_type}.coerce_output_value({result!r})`"
                    f" to return non-nullable value, returned: {coerced!r}"
                )
            return coerced
        assert isinstance(return_type, GraphQLObjectType)
        is_type_of = return_type.is_type_of
        if is_type_of is not None and not is_type_of(
            result, self.info(parent_type, node, field_def, path)
        ):
            raise GraphQLError(
                f"Expected value of type '{return_type.name}' but got: {result!r}.", [node]
            )
        assert node.selection_set is not None
        return await self.object(return_type, node.selection_set, result, path)

    async def object(
        self,
        object_type: GraphQLObjectType,
        selection_set: SelectionSetNode,
        source: object,
        path: Path,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for selection in selection_set.selections:
            assert isinstance(selection, FieldNode)
            key = selection.alias.value if selection.alias else selection.name.value
            name = selection.name.value
            if name == "__typename":
                data[key] = object_type.name
                continue
            data[key] = await self.field(
                object_type, source, selection, object_type.fields[name], path.add_key(key, None)
            )
        return data


def coerce_variables(plan: Plan, inputs: dict[str, Any]) -> VariableValues | None:
    """graphql-core's variable coercion with the plan's signatures and compiled
    coercers; None on any error (Strawberry then reports it)."""
    sources: dict[str, VariableValueSource] = {}
    coerced: dict[str, Any] = {}
    for signature, (coerce, check_depth) in zip(plan.signatures, plan.coercers, strict=True):
        name = signature.name
        value = inputs.get(name, Undefined)
        if value is Undefined:
            if is_non_null_type(signature.type):
                return None
            sources[name] = VariableValueSource(signature)
            continue  # a nullable variable left out stays out
        sources[name] = VariableValueSource(signature, value)
        if check_depth and input_is_nested_too_deeply(value, signature.type):
            return None
        coerced_value = coerce(value)
        if coerced_value is Undefined:
            return None
        coerced[name] = coerced_value
    return VariableValues(sources, coerced)


async def execute(
    plan: Plan, schema: GraphQLSchema, context: object, variables: dict[str, Any] | None
) -> GraphQLHTTPResponse | None:
    """The response body for one request, or None (before anything ran) when the
    variables do not coerce: Strawberry then answers with its own errors."""
    started = time.perf_counter()
    coerced = coerce_variables(plan, variables or {})
    if coerced is None:
        return None
    run = _Run(plan, schema, coerced, context)
    key = plan.field_node.alias.value if plan.field_node.alias else plan.field_node.name.value
    data: dict[str, Any] | None
    try:
        value = await run.field(
            plan.root_type, None, plan.field_node, plan.field_def, Path(None, key, None)
        )
        data = {key: value}
    except _Null:
        data = None
    response: GraphQLHTTPResponse = {"data": data}
    if run.errors:
        strawberry_schema.process_errors(run.errors)
        response["errors"] = [_MASK.anonymise_error(e).formatted for e in run.errors]
    outcome = "error" if run.errors else "ok"
    child(graphql_requests, plan.label, plan.kind, outcome).inc()
    child(graphql_latency, plan.label, plan.kind).observe(time.perf_counter() - started)
    return response
