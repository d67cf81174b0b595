"""The one clock of the service, so tests can move time (month ends, expiry, business days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def freeze(instant: datetime) -> None:
    """Stop time at `instant` (tests)."""
    global _frozen
    _frozen = instant.astimezone(UTC)


def advance(delta: timedelta) -> None:
    """Move time forward (tests); works frozen or running."""
    global _frozen, _offset
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


def reset() -> None:
    global _frozen, _offset
    _frozen = None
    _offset = timedelta(0)


def to_utc(instant: datetime) -> datetime | None:
    """`instant` in UTC (a naive one taken as UTC); None when that falls outside the
    years 1 to 9999 (0001-01-01T00:00+01:00 has no UTC form)."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        return None


def month_start(instant: datetime) -> datetime:
    """Midnight UTC on the first day of `instant`'s month."""
    instant = instant.astimezone(UTC)
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(instant: datetime) -> datetime:
    start = month_start(instant)
    return (start + timedelta(days=32)).replace(day=1)


def previous_month_start(instant: datetime) -> datetime:
    return month_start(month_start(instant) - timedelta(days=1))


def period_of(instant: datetime) -> str:
    """The billing period ("YYYY-MM", UTC) that contains `instant`."""
    return instant.astimezone(UTC).strftime("%Y-%m")


def month_text(period: str) -> str:
    """A "YYYY-MM" period as people say it: "2026-12" -> "December 2026"."""
    return datetime.strptime(period, "%Y-%m").strftime("%B %Y")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a "YYYY-MM" period; raises ValueError on a bad period."""
    start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    return start, next_month_start(start)


def add_business_days(instant: datetime, days: int) -> datetime:
    """`instant` moved forward by `days` weekdays (Saturday and Sunday skipped)."""
    result = instant
    while days > 0:
        result += timedelta(days=1)
        if result.weekday() < 5:
            days -= 1
    return result
