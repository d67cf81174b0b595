"""Abuse limits on GraphQL documents, checked before validation and execution.

Strawberry's depth and alias limiters and graphql-core's OverlappingFieldsCanBeMerged
rule walk each fragment once per spread. A few hundred tokens of fragments that each
spread the next one twice ("fragment bombs") make them do 2^n work; and a few hundred
copies of one field make OverlappingFieldsCanBeMerged quadratic. `document_cost` measures
the document once, in time linear in its size (each fragment is measured once and its
cost reused at every spread), and `GuardedValidation` refuses a document over budget
before any other rule sees it. Within budget, the stock limiters stay on as a second line.

The same extension also turns introspection off in production and caches validation
results (it replaces strawberry's ValidationCache, which would validate first).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SelectionSetNode,
    validate,
)
from strawberry.extensions import SchemaExtension

from app.config import Environment

# Parser: tokens per document. The full introspection query GraphiQL sends is ~200.
MAX_TOKENS = 2000
# Strawberry's depth limiter (introspection fields not counted).
MAX_DEPTH = 12
# Every field counted, introspection too (graphql-core's MaxIntrospectionDepthRule bounds
# the introspection cycles): GraphiQL's introspection query nests 15 levels.
MAX_DEPTH_ALL = 20
# Aliases, counted once per fragment spread (strawberry's MaxAliasesLimiter, which expands).
MAX_ALIASES = 30
# Fields after expanding every fragment spread: bounds what any later rule may walk.
MAX_FIELDS = 400
# Copies of one response name in a selection set (fragments merged), multiplied along
# nested sets: overlapping-field validation compares each pair, recursively, so 8 copies
# holding 4 copies each cost 8² x 4² comparisons. Fragments that share `id` stay well under.
MAX_REPEATS = 16

validation_cache_size = 1000


@dataclass(frozen=True, slots=True)
class Cost:
    """A selection set's size with every fragment spread expanded."""

    fields: int
    depth: int
    aliases: int
    # The set's own response names (fragments merged in): how many fields answer to each,
    # and the largest `repeats` below any of them.
    names: dict[str, tuple[int, int]]
    # The largest product of one name's multiplicity along any path of nested sets: what
    # overlapping-field validation's pairwise, recursive comparison grows with.
    repeats: int


_EMPTY = Cost(0, 0, 0, {}, 1)


def _merge(names: dict[str, tuple[int, int]], name: str, count: int, below: int) -> None:
    seen, deepest = names.get(name, (0, 1))
    names[name] = (seen + count, max(deepest, below))


class _Measure:
    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, Cost] = {}
        self.in_progress: set[str] = set()

    def fragment(self, name: str) -> Cost:
        if name in self.memo:
            return self.memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.in_progress:
            # Unknown or cyclic: graphql-core's own rules reject the document.
            return _EMPTY
        self.in_progress.add(name)
        cost = self.selection_set(definition.selection_set)
        self.in_progress.discard(name)
        self.memo[name] = cost
        return cost

    def selection_set(self, node: SelectionSetNode | None) -> Cost:
        if node is None:
            return _EMPTY
        fields = depth = aliases = 0
        names: dict[str, tuple[int, int]] = {}
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                sub = self.selection_set(selection.selection_set)
                fields += 1 + sub.fields
                depth = max(depth, 1 + sub.depth)
                aliases += sub.aliases + (1 if selection.alias else 0)
                _merge(names, (selection.alias or selection.name).value, 1, sub.repeats)
                continue
            if isinstance(selection, InlineFragmentNode):
                sub = self.selection_set(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                sub = self.fragment(selection.name.value)
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            fields += sub.fields
            depth = max(depth, sub.depth)
            aliases += sub.aliases
            for name, (count, below) in sub.names.items():
                _merge(names, name, count, below)
        repeats = max((count * below for count, below in names.values()), default=1)
        return Cost(fields, depth, aliases, names, repeats)


def document_cost(document: DocumentNode) -> Cost:
    """The cost of the document's operations (the largest, for several), linear time."""
    measure = _Measure(document)
    worst = _EMPTY
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            cost = measure.selection_set(definition.selection_set)
            worst = Cost(
                max(worst.fields, cost.fields),
                max(worst.depth, cost.depth),
                max(worst.aliases, cost.aliases),
                {},
                max(worst.repeats, cost.repeats),
            )
    return worst


def budget_errors(document: DocumentNode) -> list[GraphQLError]:
    """Why the document is too expensive to validate or run; empty when it is not."""
    cost = document_cost(document)
    problems = []
    if cost.fields > MAX_FIELDS:
        problems.append(
            f"The query selects {cost.fields} fields once fragments are expanded "
            f"(at most {MAX_FIELDS})."
        )
    if cost.depth > MAX_DEPTH_ALL:
        problems.append(f"The query nests {cost.depth} levels deep (at most {MAX_DEPTH_ALL}).")
    if cost.aliases > MAX_ALIASES:
        problems.append(f"{cost.aliases} aliases found. Allowed: {MAX_ALIASES}")
    if cost.repeats > MAX_REPEATS:
        problems.append(
            f"The query repeats one field {cost.repeats} times over (at most {MAX_REPEATS}); "
            "ask for each field once."
        )
    return [GraphQLError(p, extensions={"code": "QUERY_TOO_COMPLEX"}) for p in problems]


@lru_cache(maxsize=validation_cache_size)
def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
) -> list[GraphQLError]:
    # Keyed on the parsed document (ParserCache hands back the same object for the same
    # text) and the rules (which include the production introspection rule or not).
    errors = budget_errors(document)
    if errors:
        return errors
    return validate(schema, document, rules)


class GuardedValidation(SchemaExtension):
    """The cost budget first, then every validation rule, cached; no introspection in
    production."""

    def on_operation(self) -> Iterator[None]:
        settings = getattr(self.execution_context.context, "settings", None)
        if settings is not None and settings.environment is Environment.PRODUCTION:
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        context.pre_execution_errors = _validate(
            context.schema._schema, context.graphql_document, tuple(context.validation_rules)
        )
        yield
