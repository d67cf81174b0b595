"""A team's notification settings: extra recipients, limit thresholds, low balance.

The thresholds live on the team's credit account row (`credits/programs.py` reads them
under the usage path's lock); the extra emails here. Both change in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.credits import programs
from app.credits.models import CreditAccount
from app.credits.service import lock_account
from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import MAX_BALANCE, format_units
from app.notifications import addresses
from app.notifications.models import NotificationSettings

MAX_THRESHOLDS = 10


@dataclass(frozen=True, slots=True)
class SettingsView:
    emails: list[str]
    invoiced_limit_thresholds: list[int]
    low_balance_threshold: int | None  # units


async def get(team_id: uuid.UUID) -> SettingsView:
    row = await NotificationSettings.get_or_none(team_id=team_id)
    account = await CreditAccount.get_or_none(team_id=team_id)
    thresholds = programs.parse_thresholds(account.alert_thresholds) if account else (80, 100)
    return SettingsView(
        emails=list(row.emails) if row is not None else [],
        invoiced_limit_thresholds=list(thresholds),
        low_balance_threshold=account.low_balance_threshold if account else None,
    )


def check_thresholds(percents: list[int]) -> list[int]:
    if len(percents) > MAX_THRESHOLDS or any(not 1 <= p <= 100 for p in percents):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Up to {MAX_THRESHOLDS} thresholds, each a percent from 1 to 100.",
            "invoicedLimitThresholds",
        )
    return sorted(set(percents))


def check_low_balance(units: int | None) -> int | None:
    if units is not None and not 0 < units <= MAX_BALANCE:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT,
            f"A low-balance threshold is above 0 and at most {format_units(MAX_BALANCE)}.",
            "lowBalanceThreshold",
        )
    return units


_KEEP = object()


async def update(
    team_id: uuid.UUID,
    *,
    emails: list[str] | None = None,
    thresholds: list[int] | None = None,
    low_balance: int | object | None = _KEEP,
) -> SettingsView:
    """Changes what is given (None/omitted keeps); `low_balance=None` clears it."""
    cleaned = addresses.clean_all(emails) if emails is not None else None
    percents = check_thresholds(thresholds) if thresholds is not None else None
    if low_balance is not _KEEP:
        assert low_balance is None or isinstance(low_balance, int)
        check_low_balance(low_balance)
    async with atomic() as tx:
        locked = await lock_account(team_id, tx.conn)
        changes: dict[str, object] = {}
        if percents is not None:
            changes["alert_thresholds"] = programs.format_thresholds(percents)
        if low_balance is not _KEEP:
            changes["low_balance_threshold"] = low_balance
            # A new threshold is a new crossing (the alert key names the funding step).
            changes["funding_seq"] = locked.account.funding_seq + 1
        if changes:
            for name, value in changes.items():
                setattr(locked.account, name, value)
            await CreditAccount.filter(team_id=team_id).using_db(tx.conn).update(**changes)
        if cleaned is not None:
            row = await NotificationSettings.filter(team_id=team_id).using_db(tx.conn).first()
            if row is None:
                await NotificationSettings.create(
                    team_id=team_id, emails=cleaned, updated_at=clock.now(), using_db=tx.conn
                )
            else:
                row.emails = cleaned
                row.updated_at = clock.now()
                await row.save(using_db=tx.conn)
    return await get(team_id)


KEEP = _KEEP
