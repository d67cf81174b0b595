"""Gap-free invoice numbers: `CL-2026-000042`, one series per issuer and calendar year (UTC).

The number is allocated inside the transaction that inserts the invoice, from a counter row
locked FOR UPDATE: if that transaction rolls back, so does the increment, and no number is
ever skipped or used twice. Callers lock the team's account row first and the counter last,
so the global counter is held only for the end of each issuing transaction.

The database enforces a number only per team (`invoices` is keyed by team: a key of a table
distributed by team_id must hold team_id); numbers are unique across teams because this
counter, one row per series, hands each out once. On Citus the counter is a reference table,
so an issuing transaction commits on every node (two-phase commit): a cost paid once per
invoice, never on the usage path (docs/distribution-keys.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from app.invoices.models import InvoiceCounter

ISSUER_PREFIX = "CL"


def series_of(issued_at: datetime, prefix: str = ISSUER_PREFIX) -> str:
    return f"{prefix}-{issued_at.astimezone(UTC).year}"


def format_number(series: str, sequence: int) -> str:
    return f"{series}-{sequence:06d}"


async def allocate(conn: BaseDBAsyncClient, issued_at: datetime) -> str:
    """The next number of `issued_at`'s series; call inside the issuing transaction."""
    series = series_of(issued_at)
    counter = await InvoiceCounter.select_for_update().using_db(conn).get_or_none(series=series)
    if counter is None:
        # First invoice of the year. ON CONFLICT DO NOTHING: a concurrent first issuer may
        # create the row too; whoever loses waits for it and then locks the same row.
        await InvoiceCounter.bulk_create(
            [InvoiceCounter(series=series, last_number=0)], ignore_conflicts=True, using_db=conn
        )
        counter = await InvoiceCounter.select_for_update().using_db(conn).get(series=series)
    counter.last_number += 1
    await counter.save(using_db=conn, update_fields=["last_number"])
    return format_number(series, counter.last_number)
