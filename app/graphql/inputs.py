"""Text in every GraphQL argument is checked before anything runs (docs/inputs.md, "Text").

`TextGuard` walks the operation after validation: every string literal in it and every
variable it uses, nested values and object keys included. Refused text (a NUL byte, a
lone surrogate: `kit/text.py`) ends the request with one top-level error, code
`INVALID_INPUT`, before any resolver runs, so a new field cannot forget the check.

A mutation whose payload carries `errors` answers a `UserError` on the field instead:
`payload_errors` registers its resolver with `checks_own_text`, and the guard leaves the
arguments of those root fields to it (`refused_argument` finds the path). Everything else
in the document, fragments included, is still the guard's.

Variables nested past `MAX_NESTING` are refused first (BAD_REQUEST): walking them, or
coercing them, would otherwise recurse without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    VariableNode,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from app.kit import text
from app.kit.errors import DomainError, ErrorCode

_SELF_CHECKING: set[Callable[..., Any]] = set()
BACKREF = "strawberry-definition"
F = TypeVar("F", bound=Callable[..., Any])
# Lists and objects inside the variables: no input of this schema nests past 4.
MAX_NESTING = 16


def checks_own_text(resolver: F) -> F:
    """Marks a root mutation resolver that refuses bad text in its arguments itself
    (with `refused_argument`), answering a UserError; usable as a decorator."""
    _SELF_CHECKING.add(resolver)
    return resolver


def refused_argument(arguments: dict[str, Any]) -> DomainError | None:
    """INVALID_INPUT for the first refused string in a resolver's arguments, with its
    path under the `input` argument ("name", "taxId.value"), or None."""
    for key, value in arguments.items():
        if key == "info":
            continue
        found = text.find(value, "" if key == "input" else key, name=to_camel_case)
        if found is not None:
            return DomainError(ErrorCode.INVALID_INPUT, found.message, found.path or key)
    return None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the guard checks in one operation: a refused literal found once, and the
    variables it must read on each request (those outside self-checking fields)."""

    literal: text.BadText | None
    variables: tuple[str, ...]


def _self_checking(schema: GraphQLSchema, node: FieldNode) -> bool:
    mutation: GraphQLObjectType | None = schema.mutation_type
    field = mutation.fields.get(node.name.value) if mutation else None
    definition = field.extensions.get(BACKREF) if field else None
    resolver = getattr(getattr(definition, "base_resolver", None), "wrapped_func", None)
    return resolver in _SELF_CHECKING


def _walk(node: Node, path: str, found: list[text.BadText], names: set[str]) -> None:
    if isinstance(node, StringValueNode):
        if not found and not text.is_storable(node.value):
            found.append(text.BadText(path or "query"))
        return
    if isinstance(node, VariableNode):
        names.add(node.name.value)
        return
    for key in node.keys:
        if key == "loc":
            continue
        child = getattr(node, key, None)
        label = getattr(getattr(node, "name", None), "value", None)
        where = f"{path}.{label}" if path and label else (label or path)
        if isinstance(child, Node):
            _walk(child, where, found, names)
        elif isinstance(child, tuple | list):
            for item in child:
                if isinstance(item, Node):
                    _walk(item, where, found, names)


@lru_cache(maxsize=1000)
def _plan(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> _Plan:
    # Keyed on the parsed document: ParserCache hands back one object per query text.
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return _Plan(None, ())
    found: list[text.BadText] = []
    names: set[str] = set()
    for selection in operation.selection_set.selections:
        if (
            operation.operation is OperationType.MUTATION
            and isinstance(selection, FieldNode)
            and _self_checking(schema, selection)
        ):
            # Its arguments are the resolver's; what it selects is still ours.
            if selection.selection_set is not None:
                _walk(selection.selection_set, "", found, names)
            for directive in selection.directives or ():
                _walk(directive, "", found, names)
            continue
        _walk(selection, "", found, names)
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            _walk(definition, "", found, names)
    return _Plan(found[0] if found else None, tuple(sorted(names)))


def _defaults(operation: OperationDefinitionNode) -> dict[str, Node]:
    return {
        d.variable.name.value: d.default_value
        for d in operation.variable_definitions or ()
        if d.default_value is not None
    }


def nesting(value: object, limit: int) -> int:
    """How deep lists and objects nest in `value`, counted up to `limit + 1` (iteratively:
    the value may nest deeper than Python may recurse)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((child, depth) for child in children)
    return deepest


def refused_text(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> GraphQLError | None:
    """The top-level error for refused text the operation would run with, or None."""
    if variables and nesting(variables, MAX_NESTING) > MAX_NESTING:
        return GraphQLError(
            f"Variables nest at most {MAX_NESTING} levels deep.",
            extensions={"code": "BAD_REQUEST"},
        )
    plan = _plan(schema, document, operation_name)
    found = plan.literal
    values = variables or {}
    for name in plan.variables if found is None else ():
        if name in values:
            found = text.find(values[name], f"${name}")
        else:
            operation = get_operation_ast(document, operation_name)
            default = _defaults(operation).get(name) if operation else None
            bad: list[text.BadText] = []
            if default is not None:
                _walk(default, f"${name}", bad, set())
            found = bad[0] if bad else None
        if found is not None:
            break
    if found is None:
        return None
    return GraphQLError(
        f"{found.message} ({found.path})",
        extensions={"code": ErrorCode.INVALID_INPUT.value, "field": found.path},
    )


class TextGuard(SchemaExtension):
    """Refuses an operation carrying text the database cannot store (see module doc)."""

    def on_validate(self) -> Iterator[None]:
        # Before the yield: strawberry reads the errors before any exit hook runs. Placed
        # after GuardedValidation, which has validated (or refused) the document by now.
        context = self.execution_context
        if not context.pre_execution_errors and context.graphql_document is not None:
            error = refused_text(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
            )
            if error is not None:
                context.pre_execution_errors = [error]
        yield
