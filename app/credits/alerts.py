"""Billing alerts: raised once per crossing, stored, pushed after commit, told by the outbox.

`raise_alert` runs inside the caller's `atomic()` transaction; a unique key on
(team, kind, dedupe_key) decides whether the alert is new, so concurrent or
repeated crossings never raise it twice. A new alert is pushed to subscribers by
the transaction's after-commit work, never before (nor at all on a rollback), and
written to the outbox in the same transaction (emails, webhooks: docs/notifications.md).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits.models import AlertKind, BillingAlert
from app.events import bus, commit, outbox
from app.kit import clock

log = structlog.get_logger(__name__)

MAX_MESSAGE = 500
MAX_ALERTS_PAGE = 100
# A subscriber compares each wake-up against the newest alerts it has seen; a team
# never raises this many alerts between two wake-ups (there are six kinds a month).
STREAM_WINDOW = 50
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# The outbox event each new alert writes (emailed to the team, and sent to the webhook
# endpoints subscribed to its type); kinds without a public event are email only.
EVENT_TYPES: dict[AlertKind, str] = {
    AlertKind.CREDITS_LOW: "credits.low",
    AlertKind.CREDITS_EXHAUSTED: "credits.exhausted",
    AlertKind.INVOICED_LIMIT_80: "invoiced_limit.reached",
    AlertKind.INVOICED_LIMIT_100: "invoiced_limit.reached",
}
ALERT_EVENT = "alert.raised"


def alerts_channel(team_id: uuid.UUID) -> str:
    return f"alerts:{team_id}"


async def raise_alert(
    conn: BaseDBAsyncClient,
    team_id: uuid.UUID,
    kind: AlertKind,
    message: str,
    *,
    period: str | None = None,
    key: str | None = None,
    data: dict[str, Any] | None = None,
) -> BillingAlert | None:
    """Stores the alert unless this crossing already raised it; None when it had.

    `period` ("YYYY-MM", default: this month) and the optional `key` (naming one
    crossing within the month) form the unique key. Call inside the `atomic()`
    transaction that made the change (`conn` is its `tx.conn`): a new alert is
    published once it commits.
    """
    transaction = commit.current()  # before writing: outside atomic() nothing would publish
    now = clock.now()
    period = period or clock.period_of(now)
    if not _PERIOD.match(period):
        raise ValueError(f"period must be YYYY-MM, not {period!r}")
    dedupe_key = period if key is None else f"{period}:{key}"
    alert = BillingAlert(
        id=uuid.uuid4(),
        team_id=team_id,
        kind=kind,
        message=message[:MAX_MESSAGE],
        period=period,
        dedupe_key=dedupe_key[:120],
        created_at=now,
    )
    # ON CONFLICT DO NOTHING: a duplicate neither fails nor aborts the caller's
    # transaction; whether our row is the one stored tells us if the alert is new.
    await BillingAlert.bulk_create([alert], ignore_conflicts=True, using_db=conn)
    if not await BillingAlert.filter(team_id=team_id, id=alert.id).using_db(conn).exists():
        return None
    transaction.after(functools.partial(publish_alerts, [alert]))
    # Emailed and sent as a webhook from the outbox, written in this same transaction.
    body = {
        "teamId": str(team_id),
        "alertId": str(alert.id),
        "kind": kind.value,
        "message": alert.message,
        "period": period,
        **(data or {}),
    }
    await outbox.emit(transaction, EVENT_TYPES.get(kind, ALERT_EVENT), body, team_id=team_id)
    return alert


async def publish_alerts(alerts: Iterable[BillingAlert | None]) -> None:
    """Pushes new alerts to `billingAlerts` subscribers (`raise_alert` has it done after
    the commit)."""
    for alert in alerts:
        if alert is not None:
            team_id = alert.team_id
            try:
                await bus.broker.publish(alerts_channel(team_id), str(alert.id))
            except Exception:  # stored and committed: a lost push must not fail the caller
                log.warning("alerts.publish_failed", team_id=str(team_id), exc_info=True)


async def list_alerts(team_id: uuid.UUID, first: int = 20) -> list[BillingAlert]:
    """The team's newest alerts first; at most `first` (capped at 100)."""
    first = max(0, min(first, MAX_ALERTS_PAGE))
    if first == 0:
        return []
    return (
        await BillingAlert.filter(team_id=team_id).order_by("-created_at", "-id").limit(first).all()
    )


async def alert_stream(team_id: uuid.UUID) -> AsyncGenerator[BillingAlert, None]:
    """Each alert raised after the stream starts, oldest first, none dropped.

    The broker keeps only a subscriber's newest message, so a wake-up means "look
    again": the stream loads the team's newest alerts and yields those it has not
    delivered yet.
    """
    async with bus.broker.subscribe(alerts_channel(team_id)) as queue:
        seen = {a.id for a in await _newest(team_id)}
        while True:
            await queue.get()
            newest = await _newest(team_id)
            for alert in reversed(newest):
                if alert.id not in seen:
                    yield alert
            # Bounded: an alert that left the newest window never comes back into it.
            seen = {a.id for a in newest}


async def _newest(team_id: uuid.UUID) -> list[BillingAlert]:
    return (
        await BillingAlert.filter(team_id=team_id)
        .order_by("-created_at", "-id")
        .limit(STREAM_WINDOW)
        .all()
    )
