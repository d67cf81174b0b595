"""Where every table lives on Citus, and the step that puts it there.

One classification for the whole schema (docs/distribution-keys.md):

- DISTRIBUTED: rows of one team, sharded by `team_id` and co-located with `teams`
  (itself distributed by `id`), so a team's whole transaction runs on one shard.
- DISTRIBUTED_BY_KEY: lookups from an external id to its team, sharded by their own key
  and not co-located: one probe by that key finds the team, then its shard.
- REFERENCE: small shared tables, copied to every node.
- LOCAL: stays on the coordinator (bookkeeping the workers never join with).

`apply` runs after the migrations (app/db.py) and does nothing unless the database has
the `citus` extension: plain PostgreSQL and SQLite keep every table as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tortoise.backends.base.client import BaseDBAsyncClient


class Placement(StrEnum):
    DISTRIBUTED = "DISTRIBUTED"
    DISTRIBUTED_BY_KEY = "DISTRIBUTED_BY_KEY"
    REFERENCE = "REFERENCE"
    LOCAL = "LOCAL"


@dataclass(frozen=True, slots=True)
class Table:
    """A table's placement and, for distributed tables, the column that picks its shard."""

    placement: Placement
    column: str | None = None


# The table every DISTRIBUTED table is co-located with.
ANCHOR = "teams"

_TEAM = Table(Placement.DISTRIBUTED, "team_id")
_REFERENCE = Table(Placement.REFERENCE)
_LOCAL = Table(Placement.LOCAL)

TABLES: dict[str, Table] = {
    # Teams and the rows of one team.
    ANCHOR: Table(Placement.DISTRIBUTED, "id"),
    "memberships": _TEAM,
    "invitations": _TEAM,
    "team_api_keys": _TEAM,
    "audit_events": _TEAM,
    "billing_addresses": _TEAM,
    "invoices": _TEAM,
    "invoice_lines": _TEAM,
    "stripe_customers": _TEAM,
    "payment_methods": _TEAM,
    "purchases": _TEAM,
    "credit_accounts": _TEAM,
    "credit_grants": _TEAM,
    "usage_records": _TEAM,
    "ledger_entries": _TEAM,
    "usage_rollups": _TEAM,
    "usage_daily_rollups": _TEAM,
    "invoiced_periods": _TEAM,
    "promo_redemptions": _TEAM,
    "promo_failures": _TEAM,
    "billing_alerts": _TEAM,
    "auto_top_up_attempts": _TEAM,
    "holds": _TEAM,
    "notification_settings": _TEAM,
    # External id -> team.
    "stripe_objects": Table(Placement.DISTRIBUTED_BY_KEY, "stripe_id"),
    "api_key_secrets": Table(Placement.DISTRIBUTED_BY_KEY, "secret_hash"),
    # Shared by every team. `webhook_endpoints` is the operator's (it has no team).
    "users": _REFERENCE,
    "service_keys": _REFERENCE,
    "promo_codes": _REFERENCE,
    "invoice_counters": _REFERENCE,
    "period_closes": _REFERENCE,
    "closed_periods": _REFERENCE,
    "stripe_events": _REFERENCE,
    "webhook_endpoints": _REFERENCE,
    # The coordinator's own.
    "tortoise_migrations": _LOCAL,
    "outbox_events": _LOCAL,
    "notification_deliveries": _LOCAL,
}


def placement(table: str) -> Placement:
    """The placement of `table`; a table missing here is a mistake (KeyError says which)."""
    return TABLES[table].placement


def tables(*placements: Placement) -> list[str]:
    """The classified tables of the given placements, in the order above."""
    return [name for name, table in TABLES.items() if table.placement in placements]


async def is_citus(conn: BaseDBAsyncClient) -> bool:
    """Whether this database has the `citus` extension (never on SQLite)."""
    if conn.capabilities.dialect != "postgres":
        return False
    _, rows = await conn.execute_query(
        "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'"
    )
    return bool(rows)


def _fk_order(names: list[str], edges: set[tuple[str, str]]) -> list[str]:
    """`names` with every referenced table before the tables referencing it (stable)."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> None:
        if name in seen or name in path:
            return
        for source, target in sorted(edges):
            if source == name and target in names and target != name:
                visit(target, path | {name})
        seen.add(name)
        done.append(name)

    for name in names:
        visit(name, frozenset())
    return done


@dataclass(frozen=True, slots=True)
class _ForeignKey:
    name: str
    source: str
    target: str
    definition: str  # pg_get_constraintdef: "FOREIGN KEY (...) REFERENCES ..."


async def _foreign_keys(conn: BaseDBAsyncClient) -> list[_ForeignKey]:
    _, rows = await conn.execute_query(
        "SELECT c.conname AS name, src.relname AS source, dst.relname AS target, "
        "pg_catalog.pg_get_constraintdef(c.oid) AS definition "
        "FROM pg_catalog.pg_constraint c "
        "JOIN pg_catalog.pg_class src ON src.oid = c.conrelid "
        "JOIN pg_catalog.pg_class dst ON dst.oid = c.confrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = src.relnamespace "
        "WHERE c.contype = 'f' AND n.nspname = current_schema() ORDER BY c.conname"
    )
    return [_ForeignKey(r["name"], r["source"], r["target"], r["definition"]) for r in rows]


# What pg_dist_partition says of a table: hash-distributed, a reference table, or a
# Citus-managed local table (what Citus makes of a local table linked to a reference one).
_HASH, _REFERENCE_TABLE, _CITUS_LOCAL = "h", "r", "l"


async def _placed(conn: BaseDBAsyncClient) -> dict[str, str]:
    """Tables Citus already manages, by name."""
    _, rows = await conn.execute_query(
        "SELECT c.relname AS name, p.partmethod::text AS method, p.repmodel::text AS model "
        "FROM pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema()"
    )
    placed = {}
    for row in rows:
        if row["method"] == "h":
            placed[row["name"]] = _HASH
        elif row["model"] == "t":
            placed[row["name"]] = _REFERENCE_TABLE
        else:
            placed[row["name"]] = _CITUS_LOCAL
    return placed


async def _existing(conn: BaseDBAsyncClient) -> set[str]:
    _, rows = await conn.execute_query(
        "SELECT c.relname AS name FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()"
    )
    return {row["name"] for row in rows}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_WANTED = {
    Placement.DISTRIBUTED: _HASH,
    Placement.DISTRIBUTED_BY_KEY: _HASH,
    Placement.REFERENCE: _REFERENCE_TABLE,
}


def _placements(pending: list[str], edges: set[tuple[str, str]]) -> list[str]:
    """The create_*_table calls for `pending`, in an order Citus accepts."""

    def group(placement: Placement) -> list[str]:
        return _fk_order([n for n in tables(placement) if n in pending], edges)

    statements = [f"SELECT create_reference_table({_quote(n)})" for n in group(Placement.REFERENCE)]
    for name in group(Placement.DISTRIBUTED):
        column = TABLES[name].column
        assert column is not None
        colocate = "'none'" if name == ANCHOR else _quote(ANCHOR)
        statements.append(
            f"SELECT create_distributed_table({_quote(name)}, {_quote(column)}, "
            f"colocate_with => {colocate})"
        )
    for name in group(Placement.DISTRIBUTED_BY_KEY):
        column = TABLES[name].column
        assert column is not None
        statements.append(
            f"SELECT create_distributed_table({_quote(name)}, {_quote(column)}, "
            "colocate_with => 'none')"
        )
    return statements


async def apply(conn: BaseDBAsyncClient) -> list[str]:
    """On Citus, places every classified table not yet placed; returns the statements run
    (none on plain PostgreSQL and SQLite, none once every table is placed).

    The foreign keys touching those tables are dropped first and made again last, in one
    transaction: Citus turns a local table linked to a new reference table into a
    Citus-managed local table, and a table linked to another can only be distributed once
    the other is. Then the reference tables, `teams`, the co-located team tables and the
    lookups, each group with referenced tables first. Run under the migration lock
    (app/db.py)."""
    if not await is_citus(conn):
        return []
    existing = await _existing(conn)
    placed = await _placed(conn)
    pending = [
        name
        for name, table in TABLES.items()
        if name in existing
        and table.placement in _WANTED
        and placed.get(name) != _WANTED[table.placement]
    ]
    if not pending:
        return []
    links = await _foreign_keys(conn)
    touched = [fk for fk in links if fk.source in pending or fk.target in pending]
    edges = {(fk.source, fk.target) for fk in links}
    statements = [
        f"ALTER TABLE {_ident(fk.source)} DROP CONSTRAINT {_ident(fk.name)}" for fk in touched
    ]
    async with conn._in_transaction() as tx:
        # One connection per node: links to reference tables are made in this transaction.
        await tx.execute_script("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
        for statement in statements:
            await tx.execute_script(statement)
        # Tables Citus made its local ones for their links (now dropped) become plain again.
        now_placed = await _placed(tx)
        for name in pending:
            if now_placed.get(name) == _CITUS_LOCAL:
                statement = f"SELECT undistribute_table({_quote(name)})"
                await tx.execute_script(statement)
                statements.append(statement)
        for statement in _placements(pending, edges):
            await tx.execute_script(statement)
            statements.append(statement)
        for fk in touched:
            statement = (
                f"ALTER TABLE {_ident(fk.source)} ADD CONSTRAINT {_ident(fk.name)} {fk.definition}"
            )
            await tx.execute_script(statement)
            statements.append(statement)
    return statements
