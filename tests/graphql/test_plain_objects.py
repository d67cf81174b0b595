"""Plain leaf objects completed in one loop (app/graphql/execution.py) answer exactly what
graphql-core's own path answers: values, nulls, aliases, __typename, enums, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from app.graphql import execution
from app.graphql.schema import schema as api_schema


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Leafy:
    start: datetime
    label: str | None
    amount: Decimal
    count: int
    color: Color
    needed: str  # set to None below: a non-null violation

    @strawberry.field
    def doubled(self) -> int:
        return self.count * 2


def _rows(violating: bool = False) -> list[Leafy]:
    return [
        Leafy(
            start=datetime(2026, 1, 1 + n, tzinfo=UTC),
            label=None if n % 2 else f"m{n}",
            amount=Decimal(f"{n}.00000001"),
            count=n,
            color=Color.RED if n % 2 else Color.BLUE,
            needed=None if violating and n == 2 else "x",  # type: ignore[arg-type]
        )
        for n in range(5)
    ]


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Leafy]:
        return _rows()

    @strawberry.field
    def broken(self) -> list[Leafy]:
        return _rows(violating=True)


def _schemas(**options: Any) -> tuple[strawberry.Schema, strawberry.Schema]:
    config = api_schema.config
    plain = strawberry.Schema(
        query=Query, config=config, execution_context_class=execution.PlainObjects, **options
    )
    stock = strawberry.Schema(query=Query, config=config, **options)
    return plain, stock


DOCUMENTS = [
    "{ rows { start label amount count color needed } }",
    "{ rows { __typename when: start l: label amount amount2: amount } }",
    "{ rows { count doubled label } }",  # a resolver field: graphql-core's path
    "{ rows { ...F } } fragment F on Leafy { color count }",
    "query($s: Boolean!) { rows { count @include(if: $s) label @skip(if: $s) } }",
    "{ broken { count needed } }",  # non-null violated on one item
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_same_answer_as_graphql_core(document: str) -> None:
    plain, stock = _schemas()
    variables = {"s": True}
    mine = await plain.execute(document, variable_values=variables)
    theirs = await stock.execute(document, variable_values=variables)
    assert mine.data == theirs.data
    assert [(e.message, e.path) for e in mine.errors or []] == [
        (e.message, e.path) for e in theirs.errors or []
    ]


async def test_the_loop_is_taken_for_plain_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    complete = execution.complete_plain

    def counting(*args: Any) -> Any:
        result = complete(*args)
        calls.append(0 if result is None else 1)
        return result

    monkeypatch.setattr(execution, "complete_plain", counting)
    plain, _ = _schemas()
    result = await plain.execute("{ rows { start amount color } }")
    assert result.errors is None
    assert calls == [1] * 5
    calls.clear()
    # A resolver among the selected fields: no loop at all.
    await plain.execute("{ rows { count doubled } }")
    assert calls == []


class Shout(SchemaExtension):
    """A field middleware: every string comes back upper-cased."""

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


async def test_field_middleware_still_applies() -> None:
    plain, _ = _schemas(extensions=[Shout])
    result = await plain.execute("{ rows { label } }")
    assert result.data is not None
    assert result.data["rows"][0]["label"] == "M0"
