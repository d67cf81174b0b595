"""Promo codes: operators create them, team admins redeem them for promotional credits.

A redemption runs under the team's account lock, so one team's concurrent attempts
apply one after the other; (code, team) is unique in the database besides. A code's
redemption count moves with one conditional UPDATE, so `maxRedemptions` holds across
teams redeeming at once. Failed attempts are recorded and throttled per team AND per
user before the code is even looked up, so codes cannot be guessed at speed, nor by
making new teams to get a fresh count.

PROMO_CODE_EXPIRED and PROMO_CODE_EXHAUSTED do tell a guesser that a string was a code.
That is kept on purpose: such a code gives nothing, every answer (these included) counts
as a failed attempt, and an admin who typed a real code needs to know why it failed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from app.credits import rules
from app.credits.models import (
    CreditKind,
    PromoCode,
    PromoFailure,
    PromoRedemption,
)
from app.credits.service import LockedAccount, lock_account
from app.credits.store import GrantRow
from app.events.commit import atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode
from app.kit.money import UNITS_PER_DOLLAR
from app.teams.models import User

MAX_CODE = 64
MAX_PROMO_AMOUNT = 1_000_000 * UNITS_PER_DOLLAR
MAX_VALIDITY_DAYS = 3650
MAX_FAILURES_PER_HOUR = 10
FAILURE_WINDOW = timedelta(hours=1)
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")


def normalize_code(code: str) -> str:
    """Trimmed and upper-cased: codes are case-insensitive."""
    return code.strip().upper()


async def create_promo_code(
    code: str,
    amount: int,
    *,
    expires_at: datetime | None = None,
    max_redemptions: int | None = None,
    credit_validity_days: int | None = None,
) -> PromoCode:
    """A new code; `amount` is in units (the caller checked it has at most 2 decimals)."""
    normalized = normalize_code(code)
    if not normalized or len(normalized) > MAX_CODE or not _CODE.match(normalized):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"A code takes 1 to {MAX_CODE} letters, digits, '-' or '_'.",
            "code",
        )
    if amount > MAX_PROMO_AMOUNT:
        raise DomainError(ErrorCode.INVALID_AMOUNT, "A promo code is at most 1000000.00.", "amount")
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise DomainError(ErrorCode.INVALID_INPUT, "Expiry must be in the future.", "expiresAt")
    if max_redemptions is not None and max_redemptions < 1:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "maxRedemptions is at least 1.", "maxRedemptions"
        )
    if credit_validity_days is not None and not 1 <= credit_validity_days <= MAX_VALIDITY_DAYS:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"creditValidityDays is between 1 and {MAX_VALIDITY_DAYS}.",
            "creditValidityDays",
        )
    try:
        return await PromoCode.create(
            id=uuid.uuid4(),
            code=normalized,
            amount=amount,
            expires_at=expires_at,
            max_redemptions=max_redemptions,
            redemptions=0,
            credit_validity_days=credit_validity_days,
            created_at=now,
        )
    except IntegrityError:
        raise DomainError(
            ErrorCode.PROMO_CODE_EXISTS, "A promo code with this name exists.", "code"
        ) from None


@dataclass(frozen=True, slots=True)
class Redemption:
    promo_code: PromoCode
    grant: GrantRow


async def redeem_promo_code(
    team_id: uuid.UUID, code: str, *, user_id: uuid.UUID | None = None
) -> Redemption:
    """Adds the code's promotional credits to the team, once per team.

    Raises RATE_LIMITED after too many failed attempts in the last hour by the team or
    by the user `user_id` (on any team), without looking the code up; else
    PROMO_CODE_INVALID / _EXPIRED / _ALREADY_REDEEMED / _EXHAUSTED, each recorded as a
    failed attempt of both.
    """
    normalized = normalize_code(code)
    failure: DomainError | None = None
    try:
        async with atomic() as tx:
            conn = tx.conn
            locked = await lock_account(team_id, conn)
            tried_by = Q(team_id=team_id)
            if user_id is not None:
                # The user's row serializes their attempts across all their teams, so a
                # burst on many teams at once cannot pass the count together.
                await User.select_for_update().using_db(conn).filter(id=user_id).first()
                tried_by |= Q(user_id=user_id)
            since = locked.now - FAILURE_WINDOW
            failures = (
                await PromoFailure.filter(tried_by, created_at__gt=since).using_db(conn).count()
            )
            if failures >= MAX_FAILURES_PER_HOUR:
                raise DomainError(
                    ErrorCode.RATE_LIMITED,
                    "Too many failed promo code attempts; try again within the hour.",
                    "code",
                )
            try:
                redemption = await _redeem_locked(locked, normalized)
                tx.credits_changed(team_id)
            except DomainError as error:
                # Committed with the transaction: the failure counts even though nothing
                # else is written (any expiry drawn by the lock is written later).
                failure = error
                await PromoFailure.create(
                    team_id=team_id, user_id=user_id, created_at=locked.now, using_db=conn
                )
    except IntegrityError:
        # (code, team) is unique: only reachable if the lock were bypassed.
        raise _already_redeemed() from None
    if failure is not None:
        raise failure
    return redemption


async def find_code(code: str, conn: BaseDBAsyncClient) -> PromoCode | None:
    """The code by its normalized name (a seam: the throttle test checks it is not called)."""
    return await PromoCode.filter(code=code).using_db(conn).first()


def _already_redeemed() -> DomainError:
    return DomainError(
        ErrorCode.PROMO_CODE_ALREADY_REDEEMED, "This team already redeemed this code.", "code"
    )


async def _redeem_locked(locked: LockedAccount, code: str) -> Redemption:
    conn = locked.conn
    now = locked.now
    promo = await find_code(code, conn) if code and len(code) <= MAX_CODE else None
    if promo is None:
        raise DomainError(ErrorCode.PROMO_CODE_INVALID, "No such promo code.", "code")
    if (
        await PromoRedemption.filter(promo_code_id=promo.id, team_id=locked.team_id)
        .using_db(conn)
        .exists()
    ):
        raise _already_redeemed()
    if promo.expires_at is not None and promo.expires_at <= now:
        raise DomainError(ErrorCode.PROMO_CODE_EXPIRED, "This promo code has expired.", "code")
    refused = rules.balance_room(locked.account.total, promo.amount, "code")
    if refused is not None:
        raise refused
    # One conditional UPDATE takes a redemption: teams redeeming at once never exceed the cap.
    taken = PromoCode.filter(id=promo.id)
    if promo.max_redemptions is not None:
        taken = taken.filter(redemptions__lt=F("max_redemptions"))
    if not await taken.using_db(conn).update(redemptions=F("redemptions") + 1):
        raise DomainError(
            ErrorCode.PROMO_CODE_EXHAUSTED, "This promo code has been fully redeemed.", "code"
        )
    expires_at = (
        now + timedelta(days=promo.credit_validity_days) if promo.credit_validity_days else None
    )
    grant = locked.add_grant(
        CreditKind.PROMOTIONAL,
        promo.amount,
        description=f"Promo code {promo.code}",
        expires_at=expires_at,
    )
    await locked.flush()
    await PromoRedemption.create(
        promo_code_id=promo.id,
        team_id=locked.team_id,
        grant_id=grant.id,
        created_at=now,
        using_db=conn,
    )
    promo.redemptions += 1
    return Redemption(promo_code=promo, grant=grant)


async def prune_failures() -> int:
    """Deletes failed attempts older than the throttle window (the sweeper calls this)."""
    cutoff = clock.now() - FAILURE_WINDOW
    return await PromoFailure.filter(created_at__lte=cutoff).delete()
