"""Auto top-up's settings and its attempts' records (the charge is billing's part).

The usage transaction only records the intent (`auto_top_up_pending` on the locked
account row, set once per threshold crossing) and announces `TopUpDue`. Billing then
takes it through three steps (`app.billing.auto_top_up`):

1. `begin`, under the account lock: checks the caps (5 in 24 hours; `monthlyLimit`
   per calendar month, UTC) and writes a PENDING `AutoTopUpAttempt`;
2. with no transaction open, a card purchase off-session, keyed by the attempt id
   (a retry never charges twice);
3. `finish`, under the lock again: success clears the intent (and announces another
   top-up if credits are still below the threshold); a decline or a card that needs
   its holder pauses auto top-up with a reason and one alert.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from app.credits import alerts, programs
from app.credits.models import AlertKind, AutoTopUpAttempt, CreditAccount, TopUpStatus
from app.credits.programs import TopUpDue
from app.credits.service import lock_account
from app.credits.store import AccountRow
from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.money import UNITS_PER_DOLLAR, dollars_text, format_units
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction

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


def check_settings(threshold: int, amount: int, monthly_limit: int) -> None:
    """INVALID_AMOUNT on the field that is out of bounds."""
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

    Enabling needs a default card: `app.billing.auto_top_up.configure` checks that
    first. Configuring clears a pause; when enabled with the credits already below the
    threshold, a top-up is announced at once.
    """
    check_settings(threshold, amount, monthly_limit)
    async with atomic() as tx:
        conn = tx.conn
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
            tx.announce(TopUpDue(team_id))
        if locked.changed:
            tx.credits_changed(team_id)  # grants expired on the way
        await locked.flush()
        if _audited(account) != old:
            new = _audited(account)
            await audit.record(conn, team_id, actor, AuditAction.AUTO_TOP_UP_CONFIGURED, old, new)
    return AutoTopUpView.of(account)


def _audited(account: AccountRow) -> dict[str, object]:
    return {
        "enabled": account.auto_top_up_enabled,
        "threshold": format_units(account.auto_top_up_threshold or 0),
        "amount": format_units(account.auto_top_up_amount),
        "monthlyLimit": format_units(account.auto_top_up_monthly_limit),
        "pausedReason": account.auto_top_up_paused_reason,
    }


# --- the attempts' records ------------------------------------------------------------------


async def _lock_row(team_id: uuid.UUID, conn: BaseDBAsyncClient) -> CreditAccount | None:
    return await CreditAccount.select_for_update().using_db(conn).get_or_none(team_id=team_id)


async def begin(team_id: uuid.UUID) -> AutoTopUpAttempt | None:
    """Step 1, under the lock: the attempt to charge, or None (nothing to do, or capped)."""
    async with atomic() as tx:
        conn = tx.conn
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


class ChargeEnd(StrEnum):
    """How a top-up's charge ended, as billing saw it."""

    SUCCEEDED = "SUCCEEDED"
    PROCESSING = "PROCESSING"  # under way: the sweeper asks again later
    FAILED = "FAILED"


async def finish(
    team_id: uuid.UUID,
    attempt_id: uuid.UUID,
    end: ChargeEnd,
    failure_reason: str | None,
    purchase_id: str | None,
) -> AutoTopUpAttempt | None:
    """Step 3, under the lock: records the charge's outcome once."""
    async with atomic() as tx:
        conn = tx.conn
        account = await _lock_row(team_id, conn)
        attempt = (
            await AutoTopUpAttempt.select_for_update()
            .using_db(conn)
            .get_or_none(team_id=team_id, id=attempt_id)
        )
        if attempt is None:
            return None
        if account is None or attempt.status not in _ACTIVE:
            return attempt  # another pass already recorded it
        now = clock.now()
        attempt.purchase_id = purchase_id or attempt.purchase_id
        attempt.updated_at = now
        if end is ChargeEnd.SUCCEEDED:
            attempt.status = TopUpStatus.SUCCEEDED
            account.auto_top_up_pending = False
            # Still below the threshold (usage kept going): the next top-up, within the caps.
            threshold = account.auto_top_up_threshold
            if threshold is not None and programs.cached_total(account) < threshold:
                again = programs.wants_top_up(account)
                account.auto_top_up_pending = again
                if again:
                    tx.announce(TopUpDue(team_id))
        elif end is ChargeEnd.PROCESSING:
            attempt.status = TopUpStatus.PROCESSING  # the sweeper asks again later
        else:
            reason = (failure_reason or "The card was declined.")[:500]
            attempt.status = TopUpStatus.FAILED
            attempt.failure_reason = reason
            account.auto_top_up_pending = False
            account.auto_top_up_paused_reason = reason
            await alerts.raise_alert(
                conn,
                team_id,
                AlertKind.AUTO_TOP_UP_FAILED,
                f"Auto top-up of {dollars_text(attempt.amount)} failed and is paused: {reason}",
                key=f"top-up:{attempt.id}",
            )
        await attempt.save(using_db=conn)
        await account.save(using_db=conn, update_fields=_ACCOUNT_FIELDS)
    return attempt


async def stalled_teams() -> set[uuid.UUID]:
    """Teams whose top-up a crashed or interrupted worker left pending."""
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
    return {t for t in found if isinstance(t, uuid.UUID)}
