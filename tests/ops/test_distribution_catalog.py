"""The schema is ready for Citus: read from PostgreSQL's catalog over a migrated database.

The catalog tests use a PostgreSQL database of their own on either suite run (like the
other tests of PostgreSQL's behaviour, tests/support/db.py): they fail, never skip,
without a server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from tortoise import connections

from app import distribution
from app.config import Settings
from app.distribution import Placement
from tests.support import ROOT
from tests.support.db import fresh_postgres


@dataclass(frozen=True)
class Key:
    """A primary key, unique constraint or unique index: its table and columns."""

    table: str
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ForeignKey:
    name: str
    source: str
    source_columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    tables: set[str]
    keys: list[Key]
    foreign_keys: list[ForeignKey]


_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
"""

# Every unique index (primary keys and unique constraints have one): its key columns.
_KEYS = """
SELECT t.relname AS table, i.relname AS name,
       array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             ORDER BY k.pos)::text[] AS columns
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public' AND x.indisunique
"""

_FOREIGN_KEYS = """
SELECT c.conname AS name, s.relname AS source, d.relname AS target,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.pos)::text[] AS source_columns,
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
             ORDER BY k.pos)::text[] AS target_columns
FROM pg_constraint c
JOIN pg_class s ON s.oid = c.conrelid
JOIN pg_class d ON d.oid = c.confrelid
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE n.nspname = 'public' AND c.contype = 'f'
"""


def _migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "AUTH_JWT_SECRET": "x" * 40}
    return subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
async def catalog() -> AsyncIterator[Catalog]:
    """A fresh PostgreSQL database migrated by `creditline migrate`, read once."""
    async with fresh_postgres("catalog") as url:
        done = await asyncio.to_thread(_migrate, url)
        assert done.returncode == 0, done.stderr[-3000:]
        connection = await asyncpg.connect(url)
        try:
            tables = {row[0] for row in await connection.fetch(_TABLES)}
            keys = [
                Key(row["table"], row["name"], tuple(row["columns"]))
                for row in await connection.fetch(_KEYS)
            ]
            foreign_keys = [
                ForeignKey(
                    row["name"],
                    row["source"],
                    tuple(row["source_columns"]),
                    row["target"],
                    tuple(row["target_columns"]),
                )
                for row in await connection.fetch(_FOREIGN_KEYS)
            ]
        finally:
            await connection.close()
        yield Catalog(tables, keys, foreign_keys)


def _column(table: str) -> str:
    column = distribution.TABLES[table].column
    assert column is not None, table
    return column


def _sharded(table: str) -> bool:
    return distribution.TABLES[table].placement in (
        Placement.DISTRIBUTED,
        Placement.DISTRIBUTED_BY_KEY,
    )


async def test_every_table_is_classified_and_every_classified_table_exists(
    catalog: Catalog,
) -> None:
    assert catalog.tables - set(distribution.TABLES) == set(), "tables without a placement"
    assert set(distribution.TABLES) - catalog.tables == set(), "placements of no table"


async def test_every_distributed_table_names_its_column() -> None:
    for name, table in distribution.TABLES.items():
        if table.placement in (Placement.DISTRIBUTED, Placement.DISTRIBUTED_BY_KEY):
            assert table.column, name
        else:
            assert table.column is None, name
    assert distribution.TABLES[distribution.ANCHOR].column == "id"
    for name in distribution.tables(Placement.DISTRIBUTED):
        if name != distribution.ANCHOR:
            assert distribution.TABLES[name].column == "team_id", name


async def test_every_key_of_a_distributed_table_includes_its_distribution_column(
    catalog: Catalog,
) -> None:
    missing = [
        f"{key.table}.{key.name} {key.columns}"
        for key in catalog.keys
        if key.table in distribution.TABLES
        and _sharded(key.table)
        and _column(key.table) not in key.columns
    ]
    assert missing == []
    # Every distributed table has a primary key (Citus needs it for its shards' upserts
    # and for references to it).
    primaries = {key.table for key in catalog.keys if key.name.endswith("_pkey")}
    assert {t for t in catalog.tables if t in distribution.TABLES and _sharded(t)} <= primaries


def _matched(fk: ForeignKey) -> bool:
    """Whether the source's distribution column meets the target's, at the same position."""
    pairs = set(zip(fk.source_columns, fk.target_columns, strict=True))
    return (_column(fk.source), _column(fk.target)) in pairs


async def test_every_foreign_key_between_distributed_tables_includes_team_id_on_both_sides(
    catalog: Catalog,
) -> None:
    between = [
        fk
        for fk in catalog.foreign_keys
        if fk.source in distribution.TABLES
        and fk.target in distribution.TABLES
        and distribution.placement(fk.source) is Placement.DISTRIBUTED
        and distribution.placement(fk.target) is Placement.DISTRIBUTED
    ]
    assert between, "the team tables reference each other: the query found none"
    wrong = [
        f"{fk.name}: {fk.source}{fk.source_columns} -> {fk.target}{fk.target_columns}"
        for fk in between
        if not _matched(fk)
    ]
    assert wrong == []


async def test_no_foreign_key_points_from_a_shared_table_into_a_sharded_one(
    catalog: Catalog,
) -> None:
    """Citus refuses a reference (or coordinator) table pointing at a distributed one, and
    a lookup distributed by its own key is co-located with nothing it could point at."""
    wrong = []
    for fk in catalog.foreign_keys:
        if fk.source not in distribution.TABLES or fk.target not in distribution.TABLES:
            continue
        source = distribution.placement(fk.source)
        target = distribution.placement(fk.target)
        into_team_rows = target is Placement.DISTRIBUTED and source in (
            Placement.REFERENCE,
            Placement.LOCAL,
        )
        lookup = Placement.DISTRIBUTED_BY_KEY in (source, target)
        lookup = lookup and target is not Placement.REFERENCE
        if into_team_rows or lookup:
            wrong.append(f"{fk.name}: {fk.source} ({source}) -> {fk.target} ({target})")
    assert wrong == []


async def test_apply_changes_nothing_without_citus(database: Settings) -> None:
    """Plain PostgreSQL and SQLite (the suite's database) keep every table as it is."""
    conn = connections.get("default")
    assert await distribution.is_citus(conn) is False
    assert await distribution.apply(conn) == []
    # Twice: the step runs on every start-up's migrate.
    assert await distribution.apply(conn) == []
    if not database.is_sqlite:
        _, rows = await conn.execute_query(
            "SELECT count(*) AS n FROM pg_class WHERE relname = 'pg_dist_partition'"
        )
        assert rows[0]["n"] == 0
