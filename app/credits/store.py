"""Raw SQL of the credit hot paths (usage, balance reads).

Tortoise renders every query with pypika and builds a model per row;
the usage transaction runs a fixed handful of statements, so they are written here
once, per dialect. Values are written exactly as Tortoise writes them (UUIDs, aware
datetimes, enum values, booleans), so the same rows read back through the models:
on PostgreSQL asyncpg encodes the Python values; on SQLite UUIDs are stored as text
and datetimes through the `isoformat(" ")` adapter Tortoise registers with sqlite3.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from app.credits import shards
from app.credits.models import CreditAccount, CreditGrant, CreditKind, UsageRecord
from app.kit.sql import fetch_one

# (team_id, grant_id, kind, amount, usage_id, created_at): one ledger row to insert.
EntryRow = tuple[uuid.UUID, uuid.UUID, str, int, uuid.UUID | None, datetime]


@dataclass(slots=True)
class UsageRow:
    """A usage record as the usage path writes and replays it (no ORM instance)."""

    id: uuid.UUID
    team_id: uuid.UUID
    idempotency_key: str
    amount: int
    from_free: int
    from_promotional: int
    from_prepaid: int
    invoiced: int
    description: str | None
    occurred_at: datetime
    occurred_at_given: bool
    period: str
    created_at: datetime
    dimensions: dict[str, str] | None = None

    @property
    def dimensions_json(self) -> str | None:
        """The dimensions as the JSON column stores them (text; JSONB on PostgreSQL)."""
        if self.dimensions is None:
            return None
        return json.dumps(self.dimensions, ensure_ascii=False, separators=(",", ":"))


USAGE_COLUMNS = (
    "id",
    "team_id",
    "idempotency_key",
    "amount",
    "from_free",
    "from_promotional",
    "from_prepaid",
    "invoiced",
    "description",
    "occurred_at",
    "occurred_at_given",
    "period",
    "created_at",
    "dimensions",
)
# The UsageRow attribute that holds a column's value as written, where it is not the column.
_USAGE_ATTRIBUTES = {"dimensions": "dimensions_json"}
_ENTRY_COLUMNS = ("team_id", "grant_id", "kind", "amount", "usage_id", "created_at")


def _postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


def _text(value: object) -> object:
    """SQLite stores UUIDs as their text (what Tortoise's UUIDField writes)."""
    return str(value) if isinstance(value, uuid.UUID) else value


def _any(
    conn: BaseDBAsyncClient, column: str, pg_type: str, number: int, values: Sequence[object]
) -> tuple[str, list[object]]:
    """`column` equals any of `values`: on PostgreSQL one array parameter `$number`, so
    one prepared statement serves every count; on SQLite an IN list of `?`."""
    if _postgres(conn):
        return f'"{column}" = ANY(${number}::{pg_type}[])', [list(values)]
    return f'"{column}" IN ({", ".join("?" * len(values))})', [_text(v) for v in values]


@dataclass(slots=True)
class AccountRow:
    """A team's `credit_accounts` row as the locked section reads and writes it (no ORM
    instance): every column, under the model's field names, all written back on flush."""

    id: int
    team_id: uuid.UUID
    free: int
    promotional: int
    prepaid: int
    invoiced_limit: int
    invoicing_suspended: bool
    next_expiry_at: datetime | None
    updated_at: datetime
    auto_top_up_enabled: bool
    auto_top_up_threshold: int | None
    auto_top_up_amount: int
    auto_top_up_monthly_limit: int
    auto_top_up_paused_reason: str | None
    auto_top_up_pending: bool
    funding_seq: int
    held: int  # the sum of the team's HELD holds
    alert_thresholds: str  # invoiced-limit thresholds in percent, "80,100"
    low_balance_threshold: int | None
    blocked: bool  # team.blocked was the last transition told

    @property
    def total(self) -> int:
        """Free, promotional and prepaid credits together."""
        return self.free + self.promotional + self.prepaid


@dataclass(slots=True)
class GrantRow:
    """A `credit_grants` row (no ORM instance), under the model's field names."""

    id: uuid.UUID
    team_id: uuid.UUID
    kind: CreditKind
    amount: int
    remaining: int
    description: str | None
    granted_at: datetime
    expires_at: datetime | None


Row = TypeVar("Row", AccountRow, GrantRow)
_ROW_MODELS: dict[type[Any], type[Model]] = {AccountRow: CreditAccount, GrantRow: CreditGrant}


@cache
def _field_names(model: type[Model]) -> tuple[str, ...]:
    meta = model._meta
    return tuple(name for name in meta.fields_map if name in meta.fields_db_projection)


def _row_fields(row_type: type[Any]) -> tuple[str, ...]:
    """The row type's fields, in its order: checked to be exactly the model's columns,
    since the row is written back whole (a column it lacked would be lost)."""
    names = tuple(f.name for f in fields(row_type))
    model_names = _field_names(_ROW_MODELS[row_type])
    if set(names) != set(model_names):
        raise RuntimeError(f"{row_type.__name__} fields {names} are not the columns {model_names}")
    return names


_select_lists: dict[type[Any], str] = {}


def _columns(row_type: type[Any]) -> str:
    """The SELECT list of a row type: its columns in its field order (built once)."""
    columns = _select_lists.get(row_type)
    if columns is None:
        projection = _ROW_MODELS[row_type]._meta.fields_db_projection
        names = _row_fields(row_type)
        columns = _select_lists[row_type] = ", ".join(f'"{projection[n]}"' for n in names)
    return columns


async def _select(conn: BaseDBAsyncClient, sql: str, params: list[object]) -> Sequence[Any]:
    """Rows as the driver returns them (asyncpg Records, sqlite3 Rows): both read by
    column name or position, so no dict is built per row."""
    _, rows = await conn.execute_query(sql, params)
    return rows


def _or_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


_RowLoader = Callable[[Sequence[Any]], Any]
_loaders: dict[tuple[type[Any], str], _RowLoader] = {}


def _loader(row_type: type[Row], dialect: str) -> Callable[[Sequence[Any]], Row]:
    """Turns a row of `_columns(row_type)` into a `row_type`, each column converted as
    Tortoise's `_init_from_db` would for its dialect (nothing for what the driver already
    decoded, the field's type or its `to_python_value` otherwise). Which positions need a
    conversion is worked out once per dialect, not per row: these are the accounts and
    grants of every usage transaction."""
    key = (row_type, dialect)
    loader = _loaders.get(key)
    if loader is not None:
        return loader
    meta = _ROW_MODELS[row_type]._meta
    convert: dict[str, Callable[[Any], Any] | None] = {}
    for column, _, _ in meta.db_native_fields:
        convert[column] = None
    for column, _, field in meta.db_default_fields:
        convert[column] = _or_none(field.field_type)
    for column, _, field in meta.db_complex_fields:
        convert[column] = field.to_python_value
    conversions = tuple(
        (index, conv)
        for index, name in enumerate(_row_fields(row_type))
        if (conv := convert[meta.fields_db_projection[name]]) is not None
    )

    def load(row: Sequence[Any]) -> Row:
        values = list(row)
        for index, conv in conversions:
            values[index] = conv(values[index])
        return row_type(*values)

    _loaders[key] = load
    return load


def _rows(conn: BaseDBAsyncClient, row_type: type[Row], rows: Iterable[Sequence[Any]]) -> list[Row]:
    load = _loader(row_type, conn.capabilities.dialect)
    return [load(row) for row in rows]


# Planner settings of the usage transaction (PostgreSQL). Its statements touch a handful
# of rows by key, so an index probe is always right; but the planner judges by the
# statistics, and a freshly created or newly bloated table looks small enough to read
# whole: the probe of an empty usage_records, or the account and grant updates at a
# thousand teams, became sequential scans whose cost grew with the table until the next
# ANALYZE. Sorts are priced out too: the idempotency probe asks for the order of the
# unique (team_id, idempotency_key) index, and any other index would need one (docs/
# ingestion.md, "Plans that do not depend on statistics").
INDEX_PROBES_ONLY = "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off"


async def prefer_index_probes(conn: BaseDBAsyncClient) -> None:
    """Plans the rest of this transaction's statements as index probes (PostgreSQL).

    `enable_seqscan = off` and `enable_sort = off` only price a plan out; a table with
    no usable index is still read, and a sort no index gives is still made. SET LOCAL
    ends with the transaction.
    """
    if _postgres(conn):
        await conn.execute_script(INDEX_PROBES_ONLY)


# --- reads ------------------------------------------------------------------------------


async def lock_accounts(conn: BaseDBAsyncClient, team_ids: Sequence[uuid.UUID]) -> list[AccountRow]:
    """The teams' account rows, locked in team-id order (`team_ids` sorted by the caller).

    SQLite has no FOR UPDATE (Tortoise's `select_for_update` is a no-op there): its
    writers are serialised by the database lock, so a plain read is equivalent.
    """
    where, params = _any(conn, "team_id", "uuid", 1, team_ids)
    order = ' ORDER BY "team_id"' if len(team_ids) > 1 else ""
    lock = " FOR UPDATE" if _postgres(conn) else ""
    sql = f'SELECT {_columns(AccountRow)} FROM "credit_accounts" WHERE {where}{order}{lock}'
    rows = await _select(conn, sql, params)
    return _rows(conn, AccountRow, rows)


async def live_grants(conn: BaseDBAsyncClient, team_ids: Sequence[uuid.UUID]) -> list[GrantRow]:
    """Grants with something left (expired ones included: the caller expires them)."""
    where, params = _any(conn, "team_id", "uuid", 1, team_ids)
    sql = f'SELECT {_columns(GrantRow)} FROM "credit_grants" WHERE {where} AND "remaining" > 0'
    rows = await _select(conn, sql, params)
    return _rows(conn, GrantRow, rows)


def datetime_of(model: type[Model], name: str, value: object) -> datetime:
    """A datetime column's value as the model reads it (aware, from either driver)."""
    result: datetime = model._meta.fields_map[name].to_python_value(value)
    return result


def dimensions_of(value: object) -> dict[str, str] | None:
    """The dimensions column as read (JSON text from either driver)."""
    if value is None:
        return None
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return loaded if isinstance(loaded, dict) else None


def usage_row_of(row: Mapping[str, Any]) -> UsageRow:
    """A usage record from a row of `USAGE_COLUMNS`, as either driver returns it."""
    fields = UsageRecord._meta.fields_map
    occurred_at = fields["occurred_at"].to_python_value(row["occurred_at"])
    created_at = fields["created_at"].to_python_value(row["created_at"])
    record_id, team_id = row["id"], row["team_id"]
    dimensions = row["dimensions"]  # JSON text from either driver
    return UsageRow(
        id=record_id if isinstance(record_id, uuid.UUID) else uuid.UUID(record_id),
        team_id=team_id if isinstance(team_id, uuid.UUID) else uuid.UUID(team_id),
        idempotency_key=row["idempotency_key"],
        amount=int(row["amount"]),
        from_free=int(row["from_free"]),
        from_promotional=int(row["from_promotional"]),
        from_prepaid=int(row["from_prepaid"]),
        invoiced=int(row["invoiced"]),
        description=row["description"],
        occurred_at=occurred_at,
        occurred_at_given=bool(row["occurred_at_given"]),
        period=row["period"],
        created_at=created_at,
        dimensions=None if dimensions is None else json.loads(dimensions),
    )


async def usage_by_keys(
    conn: BaseDBAsyncClient, team_ids: Sequence[uuid.UUID], keys: Sequence[str]
) -> list[UsageRow]:
    """Usage records of these teams under any of these idempotency keys."""
    columns = ", ".join(f'"{c}"' for c in USAGE_COLUMNS)
    teams, team_params = _any(conn, "team_id", "uuid", 1, team_ids)
    keyed, key_params = _any(conn, "idempotency_key", "varchar", 2, keys)
    sql = f'SELECT {columns} FROM "usage_records" WHERE {teams} AND {keyed}'
    rows = await _select(conn, sql, team_params + key_params)
    return [usage_row_of(row) for row in rows]


async def usage_by_pairs(
    conn: BaseDBAsyncClient, pairs: Sequence[tuple[uuid.UUID, str]]
) -> list[UsageRow]:
    """Usage records under these (team, idempotency key) pairs."""
    if not _postgres(conn) or await split_writes(conn):
        # Citus routes `team_id = ANY(...)` to the teams' one shard, not a join with
        # unnest(); the few records of other pairs it may return are dropped here.
        wanted = set(pairs)
        found = await usage_by_keys(
            conn, sorted({t for t, _ in pairs}), sorted({k for _, k in pairs})
        )
        return [r for r in found if (r.team_id, r.idempotency_key) in wanted]
    # One seek in the unique (team_id, idempotency_key) index per pair, whatever the
    # statistics say: "the team's first key at or after this one" is a LATERAL subquery
    # with LIMIT (never flattened into a join), and only that index serves both its
    # conditions and its order; any other index leading with team_id needs a sort on
    # top, which the transaction prices out (`prefer_index_probes`). The equality is
    # checked outside. With plain
    # equalities the history index on (team_id, occurred_at) looked as cheap on a young
    # table, and each probe then read every record of the team; a plain join was planned
    # as a hash join over a sequential scan (docs/ingestion.md, "The idempotency probe").
    columns = ", ".join(f'u."{c}"' for c in USAGE_COLUMNS)
    sql = (
        f'SELECT {columns} FROM unnest($1::uuid[], $2::varchar[]) AS k("team_id", "key") '
        'CROSS JOIN LATERAL (SELECT * FROM "usage_records" AS r '
        'WHERE r."team_id" = k."team_id" AND r."idempotency_key" >= k."key" '
        'ORDER BY r."idempotency_key" LIMIT 1) AS u '
        'WHERE u."idempotency_key" = k."key"'
    )
    params = [[t for t, _ in pairs], [k for _, k in pairs]]
    return [usage_row_of(row) for row in await _select(conn, sql, params)]


@dataclass(frozen=True, slots=True)
class AccountBalances:
    """The columns of an account row a balance read needs."""

    free: int
    promotional: int
    prepaid: int
    invoiced_limit: int
    invoicing_suspended: bool
    next_expiry_at: datetime | None
    updated_at: datetime
    held: int


async def account_balances(conn: BaseDBAsyncClient, team_id: uuid.UUID) -> AccountBalances | None:
    """The cached balances of a team's account, unlocked; None for an unknown team."""
    row = await fetch_one(
        conn,
        'SELECT "free", "promotional", "prepaid", "invoiced_limit", "invoicing_suspended", '
        '"next_expiry_at", "updated_at", "held" FROM "credit_accounts" WHERE "team_id" = $1',
        [team_id],
    )
    if row is None:
        return None
    fields = CreditAccount._meta.fields_map
    next_expiry = row["next_expiry_at"]
    return AccountBalances(
        free=int(row["free"]),
        promotional=int(row["promotional"]),
        prepaid=int(row["prepaid"]),
        invoiced_limit=int(row["invoiced_limit"]),
        invoicing_suspended=bool(row["invoicing_suspended"]),
        next_expiry_at=None
        if next_expiry is None
        else fields["next_expiry_at"].to_python_value(next_expiry),
        updated_at=fields["updated_at"].to_python_value(row["updated_at"]),
        held=int(row["held"]),
    )


async def invoiced_amount(conn: BaseDBAsyncClient, team_id: uuid.UUID, period: str) -> int:
    """The team's invoiced total for a month (0 when it has none)."""
    row = await fetch_one(
        conn,
        'SELECT "amount" FROM "invoiced_periods" WHERE "team_id" = $1 AND "period" = $2',
        [team_id, period],
    )
    return int(row["amount"]) if row else 0


# --- writes -----------------------------------------------------------------------------

# Whether the usage statement keeps `usage_rollups` (USAGE_ROLLUPS; on unless a
# benchmark measures what they cost: a series then misses what was written meanwhile).
_rollups_on = True


def set_rollups(enabled: bool) -> None:
    """Turns rollup maintenance on or off for this process (the statement is rebuilt)."""
    global _rollups_on, _row_types
    if enabled != _rollups_on:
        _rollups_on = enabled
        _row_types = None


# The grouping names of usage_rollups.dimension (models.UsageRollup).
WHOLE_HOUR = ""
DESCRIPTION = "#description"
_ROLLUP_SUMS = ("amount", "from_credits", "invoiced", "events")
_ROLLUP_UPDATE = ", ".join(f'"{c}" = "usage_rollups"."{c}" + excluded."{c}"' for c in _ROLLUP_SUMS)
_ROLLUP_CONFLICT = (
    f'ON CONFLICT ("team_id", "dimension", "hour", "value") DO UPDATE SET {_ROLLUP_UPDATE}'
)
_SQLITE_ROLLUP_UPSERT = (
    'INSERT INTO "usage_rollups" ("team_id", "dimension", "hour", "value", "amount", '
    f'"from_credits", "invoiced", "events") VALUES (?, ?, ?, ?, ?, ?, ?, ?) {_ROLLUP_CONFLICT}'
)
# The same sums per UTC day: a long series reads 24 times fewer rows (docs/usage-history.md).
_DAILY_UPDATE = ", ".join(
    f'"{c}" = "usage_daily_rollups"."{c}" + excluded."{c}"' for c in _ROLLUP_SUMS
)
_DAILY_CONFLICT = (
    f'ON CONFLICT ("team_id", "dimension", "day", "value") DO UPDATE SET {_DAILY_UPDATE}'
)
_SQLITE_DAILY_UPSERT = (
    'INSERT INTO "usage_daily_rollups" ("team_id", "dimension", "day", "value", "amount", '
    f'"from_credits", "invoiced", "events") VALUES (?, ?, ?, ?, ?, ?, ?, ?) {_DAILY_CONFLICT}'
)


def hour_of(instant: datetime) -> datetime:
    """The UTC hour that contains `instant` (its rollup row's `hour`)."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(instant: datetime) -> datetime:
    """The UTC day that contains `instant` (its daily rollup row's `day`)."""
    return instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def rollup_rows(usage: Iterable[UsageRow]) -> list[list[Any]]:
    """The hourly rollup rows these records add to, summed (what PostgreSQL's statement
    computes in SQL): one per team, grouping, hour and value."""
    sums: dict[tuple[uuid.UUID, str, datetime, str], list[int]] = {}
    for record in usage:
        hour = hour_of(record.occurred_at)
        credits = record.from_free + record.from_promotional + record.from_prepaid
        groups = [(WHOLE_HOUR, "")]
        if record.description is not None:
            groups.append((DESCRIPTION, record.description))
        groups.extend((record.dimensions or {}).items())
        for dimension, value in groups:
            key = (record.team_id, dimension, hour, value)
            row = sums.setdefault(key, [0, 0, 0, 0])
            row[0] += record.amount
            row[1] += credits
            row[2] += record.invoiced
            row[3] += 1
    return [[*key, *values] for key, values in sums.items()]


def daily_rows(hourly: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """The daily rollup rows: `rollup_rows`' hourly rows summed per UTC day."""
    sums: dict[tuple[Any, str, datetime, str], list[int]] = {}
    for team_id, dimension, hour, value, *values in hourly:
        row = sums.setdefault((team_id, dimension, day_of(hour), value), [0, 0, 0, 0])
        for index, amount in enumerate(values):
            row[index] += amount
    return [[*key, *values] for key, values in sums.items()]


def _pg_rollup_part(name: str, table: str, column: str, unit: str, conflict: str) -> str:
    """PostgreSQL: the rollup sums from the statement's usage array, as one more part of
    it (hourly or daily)."""
    return (
        f'{name} AS (INSERT INTO "{table}" ("team_id", "dimension", "{column}", "value", '
        '"amount", "from_credits", "invoiced", "events") '
        f'SELECT v."team_id", d."dimension", date_trunc(\'{unit}\', v."occurred_at", \'UTC\'), '
        'd."value", sum(v."amount"), sum(v."from_free" + v."from_promotional" + v."from_prepaid"), '
        'sum(v."invoiced"), count(*) FROM unnest($1::"usage_records"[]) AS v '
        "CROSS JOIN LATERAL (SELECT '' AS \"dimension\", '' AS \"value\" "
        'UNION ALL SELECT \'#description\', v."description" WHERE v."description" IS NOT NULL '
        'UNION ALL SELECT e."key", e."value" FROM jsonb_each_text(v."dimensions") AS e) AS d '
        f"GROUP BY 1, 2, 3, 4 {conflict}), "
    )


_PG_ROLLUP_PART = _pg_rollup_part(
    "r", "usage_rollups", "hour", "hour", _ROLLUP_CONFLICT
) + _pg_rollup_part("rd", "usage_daily_rollups", "day", "day", _DAILY_CONFLICT)


@cache
def _account_columns() -> tuple[tuple[str, str], ...]:
    """(field, column) of every account column but its keys, so new columns are
    written too."""
    meta = CreditAccount._meta
    return tuple(
        (name, meta.fields_db_projection[name])
        for name in _field_names(CreditAccount)
        if name not in ("id", "team_id")
    )


def _sqlite_insert(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


async def _write_sqlite(
    conn: BaseDBAsyncClient,
    usage: Sequence[UsageRow],
    grants: Sequence[GrantRow],
    entries: Sequence[EntryRow],
    accounts: Sequence[AccountRow],
) -> None:
    """The PostgreSQL statement's writes, one executemany each: SQLite runs in-process,
    there are no round trips to save."""
    if usage:
        attributes = [_USAGE_ATTRIBUTES.get(c, c) for c in USAGE_COLUMNS]
        rows = [[_text(getattr(r, a)) for a in attributes] for r in usage]
        await conn.execute_many(_sqlite_insert("usage_records", USAGE_COLUMNS), rows)
    if grants:
        sql = 'UPDATE "credit_grants" SET "remaining" = ? WHERE "team_id" = ? AND "id" = ?'
        await conn.execute_many(sql, [[g.remaining, str(g.team_id), str(g.id)] for g in grants])
    if entries:
        rows = [[_text(v) for v in entry] for entry in entries]
        await conn.execute_many(_sqlite_insert("ledger_entries", _ENTRY_COLUMNS), rows)
    if usage and _rollups_on:
        hourly = [[str(team_id), *rest] for team_id, *rest in rollup_rows(usage)]
        await conn.execute_many(_SQLITE_ROLLUP_UPSERT, hourly)
        await conn.execute_many(_SQLITE_DAILY_UPSERT, daily_rows(hourly))
    if accounts:
        # Every column but the keys (what `Model.save()` writes): integers, booleans, text
        # and aware datetimes, which sqlite3 takes through Tortoise's adapters.
        columns = _account_columns()
        assignments = ", ".join(f'"{c}" = ?' for _, c in columns)
        sql = f'UPDATE "credit_accounts" SET {assignments} WHERE "team_id" = ?'
        values = [[getattr(a, name) for name, _ in columns] + [str(a.team_id)] for a in accounts]
        await conn.execute_many(sql, values)


@dataclass(frozen=True, slots=True)
class _RowTypes:
    """PostgreSQL: each table has a row type of the same name, and an array of it is one
    parameter. A usage transaction's rows go as three such arrays (and the grants' two)
    instead of one array per column (36): the driver checks every element of every
    array it encodes, and PostgreSQL unnests one array per table. A row of `table[]` is
    a tuple of the table's columns in their order in the catalog (creation order, which
    the migrations decide), so that order is read once and the getters below build
    tuples in it."""

    usage: Callable[[UsageRow], tuple[Any, ...]]
    entry: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # (None, *EntryRow): None is the id
    account: Callable[[AccountRow], tuple[Any, ...]]
    grant: Callable[[GrantRow], tuple[Any, ...]]
    statement: str
    grant_statement: str
    # Citus (`split_writes`): the usage records' columns for the multi-row inserts
    # (`_insert_rows`), the grants' single-row insert, and updates that name their teams.
    usage_columns: tuple[str, ...]
    grant_row_insert: str
    grants_update: str
    accounts_update: str


_row_types: _RowTypes | None = None  # a process uses one database


async def _catalog_columns(conn: BaseDBAsyncClient, table: str) -> tuple[str, ...]:
    sql = (
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1::text) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    _, rows = await conn.execute_query(sql, [f'"{table}"'])
    return tuple(row["attname"] for row in rows)


# Every row of a team table is written by (team_id, ...): its key once the keys
# include team_id, and on Citus what routes the statement to the team's shard. A
# grant's remaining amount goes as arrays of (team_id, id, remaining).
def _grants_from(first: int) -> str:
    """The grants' (team_id, id, remaining) arrays as parameters `first` to `first + 2`."""
    a, b, c = first, first + 1, first + 2
    return f'unnest(${a}::uuid[], ${b}::uuid[], ${c}::int8[]) AS v("team_id", "id", "remaining")'


_GRANTS_MATCH = 'g."team_id" = v."team_id" AND g."id" = v."id"'


async def _load_row_types(conn: BaseDBAsyncClient) -> _RowTypes:
    usage = await _catalog_columns(conn, "usage_records")
    entries = await _catalog_columns(conn, "ledger_entries")
    accounts = await _catalog_columns(conn, "credit_accounts")
    grants = await _catalog_columns(conn, "credit_grants")
    account_fields = CreditAccount._meta.fields_db_projection_reverse
    grant_fields = CreditGrant._meta.fields_db_projection_reverse
    unknown = (
        [c for c in usage if c not in USAGE_COLUMNS]
        + [c for c in entries if c != "id" and c not in _ENTRY_COLUMNS]
        + [c for c in accounts if c not in account_fields]
        + [c for c in grants if c not in grant_fields]
    )
    if unknown:
        raise RuntimeError(f"columns the usage path does not write: {unknown}")

    def names(columns: Sequence[str], prefix: str = "") -> str:
        return ", ".join(f'{prefix}"{c}"' for c in columns)

    assignments = ", ".join(f'"{c}" = v."{c}"' for c in accounts if c not in ("id", "team_id"))
    usage_insert = (
        f'INSERT INTO "usage_records" ({names(usage)}) '
        f'SELECT {names(usage, "v.")} FROM unnest($1::"usage_records"[]) AS v'
    )
    entries_insert = (
        f'INSERT INTO "ledger_entries" ({names(_ENTRY_COLUMNS)}) '
        f'SELECT {names(_ENTRY_COLUMNS, "v.")} FROM unnest($5::"ledger_entries"[]) AS v'
    )
    statement = (
        f"WITH u AS ({usage_insert}), "
        f"{_PG_ROLLUP_PART if _rollups_on else ''}"
        f'g AS (UPDATE "credit_grants" AS g SET "remaining" = v."remaining" '
        f"FROM {_grants_from(2)} WHERE {_GRANTS_MATCH}), "
        f"l AS ({entries_insert}) "
        f'UPDATE "credit_accounts" AS a SET {assignments} '
        'FROM unnest($6::"credit_accounts"[]) AS v WHERE a."team_id" = v."team_id"'
    )
    grant_statement = (
        f'INSERT INTO "credit_grants" ({names(grants)}) '
        f'SELECT {names(grants, "v.")} FROM unnest($1::"credit_grants"[]) AS v'
    )
    return _RowTypes(
        usage=attrgetter(*(_USAGE_ATTRIBUTES.get(c, c) for c in usage)),
        entry=itemgetter(*(0 if c == "id" else _ENTRY_COLUMNS.index(c) + 1 for c in entries)),
        account=attrgetter(*(account_fields[c] for c in accounts)),
        grant=attrgetter(*(grant_fields[c] for c in grants)),
        statement=statement,
        grant_statement=grant_statement,
        usage_columns=usage,
        grant_row_insert=_pg_row_insert("credit_grants", grants),
        grants_update=(
            'UPDATE "credit_grants" AS g SET "remaining" = v."remaining" '
            f"FROM {_grants_from(2)} "
            f'WHERE {_GRANTS_MATCH} AND g."team_id" = ANY($1::uuid[])'
        ),
        accounts_update=(
            f'UPDATE "credit_accounts" AS a SET {assignments} '
            'FROM unnest($1::"credit_accounts"[]) AS v '
            'WHERE a."team_id" = v."team_id" AND a."team_id" = ANY($2::uuid[])'
        ),
    )


async def _row_types_of(conn: BaseDBAsyncClient) -> _RowTypes:
    global _row_types
    if _row_types is None:
        _row_types = await _load_row_types(conn)
    return _row_types


async def insert_grants(conn: BaseDBAsyncClient, grants: Sequence[GrantRow]) -> None:
    """Inserts new grants (before the ledger entries that refer to them): one statement."""
    if not grants:
        return
    if not _postgres(conn):
        names = _row_fields(GrantRow)
        projection = CreditGrant._meta.fields_db_projection
        sql = _sqlite_insert("credit_grants", [projection[name] for name in names])
        rows = [[_text(getattr(g, name)) for name in names] for g in grants]
        await conn.execute_many(sql, rows)
        return
    types = await _row_types_of(conn)
    if await split_writes(conn):  # routed to the team's shard (`_write_split`)
        await conn.execute_many(types.grant_row_insert, [list(types.grant(g)) for g in grants])
        return
    await conn.execute_query(types.grant_statement, [[types.grant(g) for g in grants]])


# Whether the usage writes go one statement per table (None: on Citus only).
_split_override: bool | None = None


def set_split_writes(split: bool | None) -> None:
    """Forces the per-table writes on or off (tests, benchmarks); None: on Citus only."""
    global _split_override
    _split_override = split


async def split_writes(conn: BaseDBAsyncClient) -> bool:
    """Whether this transaction writes one statement per table: Citus plans a
    data-modifying CTE over unnest() on the coordinator, not on the teams' shard."""
    if _split_override is not None:
        return _split_override
    return _postgres(conn) and await shards.is_distributed(conn)


async def write_changes(
    conn: BaseDBAsyncClient,
    usage: Sequence[UsageRow],
    grants: Sequence[GrantRow],
    entries: Sequence[EntryRow],
    accounts: Sequence[AccountRow],
) -> None:
    """Inserts usage records and ledger entries (in order), writes grants' remaining
    amounts and every column of the account rows: one statement on PostgreSQL, so the
    teams' row locks are held for one round trip of writing, not four. Empty arrays
    make a part write nothing. On Citus, one statement per table that has rows to
    write, each routed to the teams' shard (`split_writes`)."""
    if not _postgres(conn):
        await _write_sqlite(conn, usage, grants, entries, accounts)
        return
    types = _row_types if _row_types is not None else await _row_types_of(conn)
    if await split_writes(conn):
        await _write_split(conn, types, usage, grants, entries, accounts)
        return
    params: list[object] = [
        [types.usage(r) for r in usage],
        [g.team_id for g in grants],
        [g.id for g in grants],
        [g.remaining for g in grants],
        [types.entry((None, *e)) for e in entries],
        [types.account(a) for a in accounts],
    ]
    await conn.execute_query(types.statement, params)


async def write_invoiced(
    conn: BaseDBAsyncClient, totals: Sequence[tuple[uuid.UUID, str, int]]
) -> None:
    """Writes (team_id, period, amount) invoiced totals read under the teams' locks,
    new ones inserted: by the unique (team_id, period), never by id alone, so on Citus
    the statement goes to the team's shard and not to every shard."""
    if not totals:
        return
    conflict = 'ON CONFLICT ("team_id", "period") DO UPDATE SET "amount" = excluded."amount"'
    if _postgres(conn):
        values, rows = "$1, $2, $3", [list(t) for t in totals]
    else:
        values, rows = "?, ?, ?", [[str(t), p, a] for t, p, a in totals]
    sql = f'INSERT INTO "invoiced_periods" ("team_id", "period", "amount") VALUES ({values}) '
    await conn.execute_many(sql + conflict, rows)


def _pg_row_insert(table: str, columns: Sequence[str]) -> str:
    """A single-row INSERT with parameters $1.. (what Citus routes to one shard)."""
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f'INSERT INTO "{table}" ({names}) VALUES ({values})'


_ROLLUP_COLUMNS = ("team_id", "dimension", "hour", "value", *_ROLLUP_SUMS)
_DAILY_COLUMNS = ("team_id", "dimension", "day", "value", *_ROLLUP_SUMS)

# Citus: a multi-row INSERT ... VALUES whose rows are all on one shard is one router task
# (one statement planned, one round trip to the worker, one-phase commit), where single
# rows cost a plan and a round trip each (docs/scaling.md, "The usage path on Citus").
# Row counts are powers of two, so a connection prepares at most seven texts per table.
_ROWS_PER_INSERT = (64, 32, 16, 8, 4, 2, 1)


@cache
def _pg_rows_insert(table: str, columns: tuple[str, ...], rows: int, conflict: str) -> str:
    """An INSERT of `rows` rows with parameters $1.., row after row, then `conflict`."""
    names = ", ".join(f'"{c}"' for c in columns)
    width = len(columns)
    values = ", ".join(
        "(" + ", ".join(f"${row * width + n}" for n in range(1, width + 1)) + ")"
        for row in range(rows)
    )
    return f'INSERT INTO "{table}" ({names}) VALUES {values} {conflict}'.rstrip()


async def _insert_rows(
    conn: BaseDBAsyncClient,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[object]],
    conflict: str = "",
) -> None:
    """`rows` in as few multi-row INSERTs as the sizes allow (30 rows: 16 + 8 + 4 + 2)."""
    start = 0
    while start < len(rows):
        size = next(n for n in _ROWS_PER_INSERT if n <= len(rows) - start)
        chunk = rows[start : start + size]
        sql = _pg_rows_insert(table, columns, size, conflict)
        await conn.execute_query(sql, [value for row in chunk for value in row])
        start += size


async def _write_split(
    conn: BaseDBAsyncClient,
    types: _RowTypes,
    usage: Sequence[UsageRow],
    grants: Sequence[GrantRow],
    entries: Sequence[EntryRow],
    accounts: Sequence[AccountRow],
) -> None:
    """`write_changes` for Citus, in the statement's order. Every statement is routed to
    the teams' shard: Citus runs an INSERT ... SELECT FROM unnest() on the coordinator
    and sends its rows by COPY, after which the transaction commits in two phases even
    on one worker (measured, docs/scaling.md); multi-row INSERT ... VALUES statements
    are router plans (`_insert_rows`)."""
    if usage:
        records = [types.usage(r) for r in usage]
        await _insert_rows(conn, "usage_records", types.usage_columns, records)
        if _rollups_on:
            hourly = rollup_rows(usage)
            await _insert_rows(conn, "usage_rollups", _ROLLUP_COLUMNS, hourly, _ROLLUP_CONFLICT)
            daily = daily_rows(hourly)
            await _insert_rows(conn, "usage_daily_rollups", _DAILY_COLUMNS, daily, _DAILY_CONFLICT)
    if grants:
        teams = sorted({g.team_id for g in grants}, key=str)
        params: list[object] = [
            teams,
            [g.team_id for g in grants],
            [g.id for g in grants],
            [g.remaining for g in grants],
        ]
        await conn.execute_query(types.grants_update, params)
    if entries:
        await _insert_rows(conn, "ledger_entries", _ENTRY_COLUMNS, entries)
    if accounts:
        written = [types.account(a) for a in accounts]
        await conn.execute_query(types.accounts_update, [written, [a.team_id for a in accounts]])
