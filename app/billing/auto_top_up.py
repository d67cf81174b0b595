"""Auto top-up's charges: a card purchase whenever credits announce `TopUpDue`.

Each team has at most one task at a time: an announcement while it runs asks for one
more pass, never a second task. The steps' records and caps live in
`app.credits.auto_top_up`; the sweeper resumes attempts a crashed worker left behind.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from app.billing.purchases import purchase_off_session
from app.credits import auto_top_up as settings
from app.credits.auto_top_up import AutoTopUpView, ChargeEnd
from app.credits.models import AutoTopUpAttempt
from app.credits.programs import TopUpDue
from app.events import commit
from app.kit.errors import DomainError, ErrorCode
from app.payments.methods import default_payment_method
from app.payments.models import PaymentMethodType, PurchaseStatus
from app.teams.audit import service as audit

log = structlog.get_logger(__name__)

PURCHASE_REASON = "auto_top_up"

_wanted: set[uuid.UUID] = set()
_tasks: dict[uuid.UUID, asyncio.Task[None]] = {}


async def configure(
    team_id: uuid.UUID,
    *,
    enabled: bool,
    threshold: int,
    amount: int,
    monthly_limit: int,
    actor: str = audit.SYSTEM,
) -> AutoTopUpView:
    """Sets the team's auto top-up; enabling needs a default card (it is what is charged)."""
    settings.check_settings(threshold, amount, monthly_limit)
    if enabled:
        method = await default_payment_method(team_id)
        if method is None or method.type is not PaymentMethodType.CARD:
            raise DomainError(
                ErrorCode.PAYMENT_METHOD_REQUIRED,
                "Auto top-up charges the default card: add a card and make it the default.",
                "enabled",
            )
    return await settings.configure(
        team_id,
        enabled=enabled,
        threshold=threshold,
        amount=amount,
        monthly_limit=monthly_limit,
        actor=actor,
    )


def schedule(team_id: uuid.UUID) -> None:
    """Runs the team's pending top-up in the background (call after the commit)."""
    _wanted.add(team_id)
    task = _tasks.get(team_id)
    if task is None or task.done():
        _tasks[team_id] = asyncio.get_running_loop().create_task(
            _worker(team_id), name=f"auto-top-up:{team_id}"
        )


async def _on_top_up_due(due: TopUpDue) -> None:
    schedule(due.team_id)


commit.on(TopUpDue, _on_top_up_due)


async def _worker(team_id: uuid.UUID) -> None:
    try:
        while team_id in _wanted:
            _wanted.discard(team_id)
            try:
                await run_once(team_id)
            except Exception:  # the sweeper resumes what is left pending
                log.exception("auto_top_up.failed", team_id=str(team_id))
    finally:
        if _tasks.get(team_id) is asyncio.current_task():
            del _tasks[team_id]


async def wait_idle() -> None:
    """Waits for every scheduled top-up to finish (tests, shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks.values()), return_exceptions=True)


async def shutdown(grace_seconds: float = 20.0) -> None:
    """Lets top-ups under way record their outcome; cancels what takes longer.

    A cancelled one stays PENDING and the sweeper resumes it with the same key.
    """
    try:
        await asyncio.wait_for(wait_idle(), grace_seconds)
    except TimeoutError:
        log.warning("auto_top_up.shutdown_timeout", teams=[str(t) for t in _tasks])
        for task in list(_tasks.values()):
            task.cancel()
        await asyncio.gather(*list(_tasks.values()), return_exceptions=True)


async def run_once(team_id: uuid.UUID) -> AutoTopUpAttempt | None:
    """Takes the team's pending top-up through its three steps; returns the attempt."""
    attempt = await settings.begin(team_id)
    if attempt is None:
        return None
    try:
        purchase = await purchase_off_session(
            team_id,
            attempt.amount,
            idempotency_key=f"auto-top-up:{attempt.id}",
            reason=PURCHASE_REASON,
        )
    except DomainError as error:
        # No card any more, an amount outside the purchase bounds: the charge cannot happen.
        return await settings.finish(team_id, attempt.id, ChargeEnd.FAILED, error.message, None)
    if purchase.status is PurchaseStatus.SUCCEEDED:
        end, reason = ChargeEnd.SUCCEEDED, None
    elif purchase.status is PurchaseStatus.PROCESSING:
        end, reason = ChargeEnd.PROCESSING, None
    elif purchase.status is PurchaseStatus.REQUIRES_ACTION:
        end = ChargeEnd.FAILED
        reason = "The bank asked the cardholder to authenticate; pay once by hand, then re-enable."
    else:
        end, reason = ChargeEnd.FAILED, purchase.failure_reason
    return await settings.finish(team_id, attempt.id, end, reason, str(purchase.id))


async def resume_stalled() -> int:
    """Schedules top-ups left pending by a crashed or interrupted worker; returns how many."""
    teams = await settings.stalled_teams()
    for team_id in teams:
        if team_id not in _tasks:
            schedule(team_id)
    return len(teams)
