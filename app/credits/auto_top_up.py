"""Auto top-up: when usage leaves a team's credits below its threshold, buy more.

The usage transaction only records the intent (`auto_top_up_pending` on the locked
account row, set once per threshold crossing). After it commits, `schedule` starts
a task that, in three steps:

1. under the account lock, checks the caps (5 in 24 hours; `monthlyLimit` per
   calendar month, UTC) and writes a PENDING `AutoTopUpAttempt`;
2. with no transaction open, charges the default card off-session through
   `payments.purchase_off_session`, keyed by the attempt id (a retry never charges
   twice);
3. under the lock again, records the outcome: success clears the intent (and starts
   another top-up if credits are still below the threshold); a decline or a card
   that needs its holder pauses auto top-up with a reason and one alert.

The sweeper resumes attempts a crashed worker left behind.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.audit import service as audit
from app.audit.models import AuditAction
from app.credits import alerts, programs
from app.credits.models import (
    AlertKind,
    AutoTopUpAttempt,
    CreditAccount,
    TopUpStatus,
)
from app.credits.service import lock_account
from app.credits.store import AccountRow
from app.events import bus
from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.money import UNITS_PER_DOLLAR, format_units
from app.payments import service as payments
from app.payments.models import PaymentMethodType, PurchaseStatus

log = structlog.get_logger(__name__)

MIN_AMOUNT = 25 * UNITS_PER_DOLLAR
MAX_AMOUNT = 100_000 * UNITS_PER_DOLLAR
MAX_THRESHOLD = 1_000_000 * UNITS_PER_DOLLAR
MAX_MONTHLY_LIMIT = 1_000_000 * UNITS_PER_DOLLAR
MAX_PER_DAY = 5
DAY = timedelta(hours=24)
STALE_AFTER = timedelta(minutes=5)
PURCHASE_REASON = "auto_top_up"

_ACTIVE = (TopUpStatus.PENDING, TopUpStatus.PROCESSING)
# Attempts that reached the card count against the 24-hour cap; money taken or on its
# way counts against the month.
_CHARGED = (TopUpStatus.PENDING, TopUpStatus.PROCESSING, TopUpStatus.SUCCEEDED)
_TRIED = (*_CHARGED, TopUpStatus.FAILED)
_ACCOUNT_FIELDS = ["auto_top_up_pending", "auto_top_up_paused_reason"]


@dataclass(frozen=True, slots=True)
class AutoTopUpView:
    enabled: bool
    threshold: int
    amount: int
    monthly_limit: int
    paused_reason: str | None
    pending: bool

    @classmethod
    def of(cls, account: CreditAccount | AccountRow) -> AutoTopUpView:
        return cls(
            enabled=account.auto_top_up_enabled,
            threshold=account.auto_top_up_threshold or 0,
            amount=account.auto_top_up_amount,
            monthly_limit=account.auto_top_up_monthly_limit,
            paused_reason=account.auto_top_up_paused_reason,
            pending=account.auto_top_up_pending,
        )


async def view(team_id: uuid.UUID) -> AutoTopUpView:
    account = await CreditAccount.get_or_none(team_id=team_id)
    if account is None:
        raise NotFound()
    return AutoTopUpView.of(account)


def _check(threshold: int, amount: int, monthly_limit: int) -> None:
    if threshold > MAX_THRESHOLD:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT, "The threshold is at most 1000000.00.", "threshold"
        )
    if amount < MIN_AMOUNT:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT, f"A top-up is at least {format_units(MIN_AMOUNT)}.", "amount"
        )
    if amount > MAX_AMOUNT:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT, f"A top-up is at most {format_units(MAX_AMOUNT)}.", "amount"
        )
    if monthly_limit < amount:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT,
            "The monthly limit is at least the top-up amount.",
            "monthlyLimit",
        )
    if monthly_limit > MAX_MONTHLY_LIMIT:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT, "The monthly limit is at most 1000000.00.", "monthlyLimit"
        )


async def configure(
    team_id: uuid.UUID,
    *,
    enabled: bool,
    threshold: int,
    amount: int,
    monthly_limit: int,
    actor: str = audit.SYSTEM,
) -> AutoTopUpView:
    """Sets the team's auto top-up (amounts in units, 2 decimals checked by the caller).

    Enabling needs a default card. Configuring clears a pause; when enabled with the
    credits already below the threshold, a top-up starts at once.
    """
    _check(threshold, amount, monthly_limit)
    if enabled:
        method = await payments.default_payment_method(team_id)
        if method is None or method.type is not PaymentMethodType.CARD:
            raise DomainError(
                ErrorCode.PAYMENT_METHOD_REQUIRED,
                "Auto top-up charges the default card: add a card and make it the default.",
                "enabled",
            )
    async with in_transaction() as conn:
        locked = await lock_account(team_id, conn)
        account = locked.account
        old = _audited(account)
        account.auto_top_up_enabled = enabled
        account.auto_top_up_threshold = threshold
        account.auto_top_up_amount = amount
        account.auto_top_up_monthly_limit = monthly_limit
        account.auto_top_up_paused_reason = None
        # A new threshold starts a new crossing (and a new CREDITS_LOW alert key).
        account.funding_seq += 1
        start = enabled and locked.available < threshold and programs.wants_top_up(account)
        if start:
            account.auto_top_up_pending = True
        expired = locked.changed
        await locked.flush()
        if _audited(account) != old:
            new = _audited(account)
            await audit.record(conn, team_id, actor, AuditAction.AUTO_TOP_UP_CONFIGURED, old, new)
    if expired:
        await bus.credits_changed(team_id)
    if start:
        schedule(team_id)
    return AutoTopUpView.of(account)


def _audited(account: AccountRow) -> dict[str, object]:
    return {
        "enabled": account.auto_top_up_enabled,
        "threshold": format_units(account.auto_top_up_threshold or 0),
        "amount": format_units(account.auto_top_up_amount),
        "monthlyLimit": format_units(account.auto_top_up_monthly_limit),
        "pausedReason": account.auto_top_up_paused_reason,
    }


# --- running top-ups ------------------------------------------------------------------------

_wanted: set[uuid.UUID] = set()
_tasks: dict[uuid.UUID, asyncio.Task[None]] = {}


def schedule(team_id: uuid.UUID) -> None:
    """Runs the team's pending top-up in the background (call after the commit)."""
    _wanted.add(team_id)
    task = _tasks.get(team_id)
    if task is None or task.done():
        _tasks[team_id] = asyncio.get_running_loop().create_task(
            _worker(team_id), name=f"auto-top-up:{team_id}"
        )


async def _worker(team_id: uuid.UUID) -> None:
    try:
        # A schedule() while this runs asks for one more pass, never a second task.
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


async def _lock_row(team_id: uuid.UUID, conn: BaseDBAsyncClient) -> CreditAccount | None:
    return await CreditAccount.select_for_update().using_db(conn).get_or_none(team_id=team_id)


async def run_once(team_id: uuid.UUID) -> AutoTopUpAttempt | None:
    """Takes the team's pending top-up through its three steps; returns the attempt."""
    attempt = await _begin(team_id)
    if attempt is None:
        return None
    try:
        purchase = await payments.purchase_off_session(
            team_id,
            attempt.amount,
            idempotency_key=f"auto-top-up:{attempt.id}",
            reason=PURCHASE_REASON,
        )
    except DomainError as error:
        # No card any more, an amount outside the purchase bounds: the charge cannot happen.
        return await _finish(attempt.id, PurchaseStatus.FAILED, error.message, None)
    return await _finish(attempt.id, purchase.status, purchase.failure_reason, str(purchase.id))


async def _begin(team_id: uuid.UUID) -> AutoTopUpAttempt | None:
    """Step 1, under the lock: the attempt to charge, or None (nothing to do, or capped)."""
    async with in_transaction() as conn:
        account = await _lock_row(team_id, conn)
        if account is None or not account.auto_top_up_pending:
            return None
        in_flight = (
            await AutoTopUpAttempt.filter(team_id=team_id, status__in=_ACTIVE)
            .using_db(conn)
            .order_by("-created_at")
            .first()
        )
        if in_flight is not None:
            return in_flight  # resumed: the same idempotency key, so never a second charge
        if not account.auto_top_up_enabled or account.auto_top_up_paused_reason is not None:
            account.auto_top_up_pending = False
            await account.save(using_db=conn, update_fields=_ACCOUNT_FIELDS)
            return None
        now = clock.now()
        capped = await _cap_reason(conn, account, now)
        attempt = AutoTopUpAttempt(
            id=uuid.uuid4(),
            team_id=team_id,
            amount=account.auto_top_up_amount,
            status=TopUpStatus.SKIPPED if capped else TopUpStatus.PENDING,
            period=clock.period_of(now),
            failure_reason=capped,
            created_at=now,
            updated_at=now,
        )
        await attempt.save(using_db=conn, force_create=True)
        if capped:
            account.auto_top_up_pending = False
            await account.save(using_db=conn, update_fields=_ACCOUNT_FIELDS)
            log.info("auto_top_up.capped", team_id=str(team_id), reason=capped)
            return None
        return attempt


async def _cap_reason(conn: BaseDBAsyncClient, account: CreditAccount, now: datetime) -> str | None:
    """Why a top-up may not happen now (the caps), or None."""
    team_id = account.team_id
    recent = (
        await AutoTopUpAttempt.filter(team_id=team_id, status__in=_TRIED, created_at__gt=now - DAY)
        .using_db(conn)
        .count()
    )
    if recent >= MAX_PER_DAY:
        return f"{MAX_PER_DAY} auto top-ups in the last 24 hours."
    this_month = (
        await AutoTopUpAttempt.filter(
            team_id=team_id, status__in=_CHARGED, period=clock.period_of(now)
        )
        .using_db(conn)
        .values_list("amount", flat=True)
    )
    spent = sum(int(amount) for amount in this_month)  # type: ignore[call-overload]
    if spent + account.auto_top_up_amount > account.auto_top_up_monthly_limit:
        return (
            f"The monthly limit of {format_units(account.auto_top_up_monthly_limit)} "
            f"would be passed ({format_units(spent)} this month)."
        )
    return None


async def _finish(
    attempt_id: uuid.UUID,
    status: PurchaseStatus,
    failure_reason: str | None,
    purchase_id: str | None,
) -> AutoTopUpAttempt | None:
    """Step 3, under the lock: records the charge's outcome once."""
    again = False
    async with atomic() as tx:
        conn = tx.conn
        found = await AutoTopUpAttempt.filter(id=attempt_id).using_db(conn).first()
        if found is None:
            return None
        team_id = found.team_id
        assert isinstance(team_id, uuid.UUID)
        account = await _lock_row(team_id, conn)
        attempt = await AutoTopUpAttempt.select_for_update().using_db(conn).get(id=attempt_id)
        if account is None or attempt.status not in _ACTIVE:
            return attempt  # another pass already recorded it
        now = clock.now()
        attempt.purchase_id = purchase_id or attempt.purchase_id
        attempt.updated_at = now
        if status is PurchaseStatus.SUCCEEDED:
            attempt.status = TopUpStatus.SUCCEEDED
            account.auto_top_up_pending = False
            # Still below the threshold (usage kept going): the next top-up, within the caps.
            threshold = account.auto_top_up_threshold
            if threshold is not None and programs.cached_total(account) < threshold:
                again = programs.wants_top_up(account)
                account.auto_top_up_pending = again
        elif status is PurchaseStatus.PROCESSING:
            attempt.status = TopUpStatus.PROCESSING  # the sweeper asks again later
        else:
            reason = _failure_text(status, failure_reason)
            attempt.status = TopUpStatus.FAILED
            attempt.failure_reason = reason
            account.auto_top_up_pending = False
            account.auto_top_up_paused_reason = reason
            await alerts.raise_alert(
                conn,
                team_id,
                AlertKind.AUTO_TOP_UP_FAILED,
                f"Auto top-up of {format_units(attempt.amount)} failed and is paused: {reason}",
                key=f"top-up:{attempt.id}",
            )
        await attempt.save(using_db=conn)
        await account.save(using_db=conn, update_fields=_ACCOUNT_FIELDS)
    if again:
        schedule(team_id)
    return attempt


def _failure_text(status: PurchaseStatus, failure_reason: str | None) -> str:
    if status is PurchaseStatus.REQUIRES_ACTION:
        return "The bank asked the cardholder to authenticate; pay once by hand, then re-enable."
    return (failure_reason or "The card was declined.")[:500]


async def resume_stalled() -> int:
    """Schedules top-ups left pending by a crashed or interrupted worker; returns how many."""
    cutoff = clock.now() - STALE_AFTER
    stale = await AutoTopUpAttempt.filter(status__in=_ACTIVE, updated_at__lt=cutoff).values_list(
        "team_id", flat=True
    )
    active = await AutoTopUpAttempt.filter(status__in=_ACTIVE).values_list("team_id", flat=True)
    orphans = (
        await CreditAccount.filter(auto_top_up_pending=True)
        .exclude(team_id__in=list(active))
        .values_list("team_id", flat=True)
    )
    found: list[object] = [*stale, *orphans]
    teams = {t for t in found if isinstance(t, uuid.UUID)}
    for team_id in teams:
        if team_id not in _tasks:
            schedule(team_id)
    return len(teams)
