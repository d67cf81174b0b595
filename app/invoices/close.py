"""The monthly close: mark a past month closed, then issue each team's usage invoice.

Charging the issued invoices is `app.billing.collection`'s part.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from app.credits.models import ClosedPeriod, CreditAccount, InvoicedPeriod
from app.invoices.models import PeriodClose
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode

_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def parse_period(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a "YYYY-MM" period; INVALID_INPUT on `period` otherwise."""
    if not _PERIOD.fullmatch(period):
        raise DomainError(ErrorCode.INVALID_INPUT, "A period is YYYY-MM, e.g. 2026-10.", "period")
    return clock.period_bounds(period)


def previous_period(now: datetime | None = None) -> str:
    return clock.period_of(clock.previous_month_start(now or clock.now()))


async def teams_to_invoice(period: str) -> list[uuid.UUID]:
    """Teams that may have invoiced usage in `period`; read after the period was closed.

    Beside the teams with a row for the period, every team with an invoiced limit: a usage
    transaction that checked the period before it closed may still be inserting that
    team's first row. It holds the account lock, which issuing then waits for.
    """
    ids: set[object] = set(
        await InvoicedPeriod.filter(period=period, amount__gt=0).values_list("team_id", flat=True)
    )
    ids |= set(await CreditAccount.filter(invoiced_limit__gt=0).values_list("team_id", flat=True))
    return sorted(i for i in ids if isinstance(i, uuid.UUID))


async def mark_closed(period: str, now: datetime) -> None:
    """From this commit on, usage dated in `period` is refused (PERIOD_CLOSED), and what
    was accepted before is visible under each account lock; the close is under way."""
    await ClosedPeriod.bulk_create(
        [ClosedPeriod(period=period, closed_at=now)], ignore_conflicts=True
    )
    await PeriodClose.bulk_create(
        [PeriodClose(period=period, started_at=now)], ignore_conflicts=True
    )


async def mark_completed(period: str) -> None:
    """Every team of `period` was invoiced: later passes skip it."""
    await PeriodClose.filter(period=period, completed_at__isnull=True).update(
        completed_at=clock.now()
    )


async def periods_to_close(now: datetime | None = None) -> list[str]:
    """Past periods whose close has not completed: the previous month, and any older one
    with invoiced usage (a close that never ran or stopped half-way)."""
    now = now or clock.now()
    current = clock.period_of(now)
    periods = {previous_period(now)}
    periods |= {
        str(p)
        for p in await InvoicedPeriod.filter(period__lt=current, amount__gt=0)
        .distinct()
        .values_list("period", flat=True)
    }
    done = set(
        await PeriodClose.filter(period__in=periods, completed_at__isnull=False).values_list(
            "period", flat=True
        )
    )
    return sorted(periods - done)
