"""Holds: money reserved now for a request that is paid for when it ends (docs/holds.md).

A hold draws from no grant: it raises the account's `held`, which the usage gate takes
off what is available (`rules.available`), so money held is never available twice.
Capturing draws the captured amount in the waterfall order as one usage event keyed
`hold:<id>` and frees the rest; releasing or expiring frees it all. Every change runs
under the team's account lock, which first expires the team's due holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.expressions import Q

from app.credits import dimensions, rules, service, store
from app.credits.models import Hold, HoldStatus
from app.credits.service import HOLD_KEY_PREFIX, LockedAccount, UsageRequest
from app.credits.store import UsageRow
from app.events.commit import Transaction, atomic
from app.kit import clock
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.ids import parse_uuid, time_ordered_id
from app.kit.pagination import decode_time_cursor, encode_time_cursor, page_size
from app.kit.text import is_storable

DEFAULT_TTL_SECONDS = 600
MAX_TTL_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class HoldRequest:
    team_id: uuid.UUID
    amount: int
    idempotency_key: str
    expires_in_seconds: int = DEFAULT_TTL_SECONDS
    description: str | None = None
    dimensions: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Capture:
    """A captured hold and the usage record its capture wrote."""

    hold: Hold
    usage: UsageRow


@dataclass(frozen=True, slots=True)
class HoldPage:
    holds: list[Hold]
    has_next_page: bool
    cursors: list[str] = field(default_factory=list)


def usage_key(hold_id: uuid.UUID) -> str:
    """The idempotency key of a hold's capture: a retried capture finds its record."""
    return f"{HOLD_KEY_PREFIX}{hold_id}"


def status_of(hold: Hold, now: datetime) -> HoldStatus:
    """The status as the next locked write would leave it: HELD past its expiry is EXPIRED."""
    if hold.status is HoldStatus.HELD and hold.expires_at <= now:
        return HoldStatus.EXPIRED
    return HoldStatus(hold.status)


# --- checks that need no database --------------------------------------------------------


def check_text(value: str | None, field_name: str, limit: int) -> None:
    """A stored string: at most `limit` characters, and storable on either database."""
    if value is None:
        return
    if len(value) > limit:
        raise DomainError(ErrorCode.INVALID_INPUT, f"At most {limit} characters.", field_name)
    if not is_storable(value):
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Text may not hold NUL or unpaired surrogates.", field_name
        )


def check_dimensions(value: object) -> dict[str, str] | None:
    """The usage dimensions' rules (`credits.dimensions`), for a hold and its capture."""
    parsed = dimensions.parse(value)
    if parsed is not None and (error := dimensions.problem(parsed)) is not None:
        raise error
    return parsed


def check_request(request: HoldRequest) -> None:
    """Everything about a new hold that needs no database; raises DomainError."""
    key = request.idempotency_key
    if not key.strip() or len(key) > service.MAX_IDEMPOTENCY_KEY:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"The idempotency key takes 1 to {service.MAX_IDEMPOTENCY_KEY} characters.",
            "idempotencyKey",
        )
    check_text(key, "idempotencyKey", service.MAX_IDEMPOTENCY_KEY)
    if request.amount <= 0:
        raise DomainError(ErrorCode.INVALID_AMOUNT, "amount must be greater than zero", "amount")
    ttl = request.expires_in_seconds
    if isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL_SECONDS:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"expiresInSeconds takes 1 to {MAX_TTL_SECONDS}.",
            "expiresInSeconds",
        )
    check_text(request.description, "description", service.MAX_DESCRIPTION)
    check_dimensions(request.dimensions)


def _same_request(hold: Hold, request: HoldRequest) -> bool:
    return (
        hold.amount == request.amount
        and hold.description == request.description
        and hold.dimensions == request.dimensions
        and hold.expires_at - hold.created_at == timedelta(seconds=request.expires_in_seconds)
    )


# --- the locked operations ---------------------------------------------------------------


async def _headroom(tx: Transaction, locked: LockedAccount) -> int:
    account = locked.account
    used = await store.invoiced_amount(tx.conn, locked.team_id, clock.period_of(locked.now))
    return rules.invoiced_headroom(account.invoiced_limit, used, account.invoicing_suspended)


async def create_hold(request: HoldRequest) -> Hold:
    """Reserves `amount` for the team, or raises CREDITS_EXHAUSTED / INVOICED_LIMIT_REACHED.

    A replayed idempotency key answers its hold as it is now; with other parameters,
    IDEMPOTENCY_KEY_REUSED. Raises NotFound for an unknown team.
    """
    check_request(request)
    async with atomic() as tx:
        locked = await service.lock_account(request.team_id, tx.conn)
        if locked.changed:  # due expiries first, so a replay shows an expired hold as such
            await locked.flush()
            tx.credits_changed(locked.team_id)
        existing = (
            await Hold.filter(team_id=request.team_id, idempotency_key=request.idempotency_key)
            .using_db(tx.conn)
            .first()
        )
        if existing is not None:
            if not _same_request(existing, request):
                raise DomainError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "This idempotency key was used with other parameters.",
                    "idempotencyKey",
                )
            return existing
        # Only a hold that credits not held cannot cover reads the month's invoiced total.
        if request.amount > locked.available - locked.held:
            available = rules.available(locked.available, await _headroom(tx, locked), locked.held)
            if request.amount > available:
                raise rules.refusal(locked.account.invoiced_limit)
        now = locked.now
        hold = Hold(
            id=time_ordered_id(),
            team_id=request.team_id,
            idempotency_key=request.idempotency_key,
            amount=request.amount,
            captured=0,
            status=HoldStatus.HELD,
            description=request.description,
            dimensions=request.dimensions,
            expires_at=now + timedelta(seconds=request.expires_in_seconds),
            created_at=now,
            updated_at=now,
        )
        await hold.save(using_db=tx.conn, force_create=True)
        locked.account.held += request.amount
        await locked.flush()
        tx.credits_changed(request.team_id)
    return hold


async def _locked_hold(
    tx: Transaction, hold_id: object, team_id: uuid.UUID | None
) -> tuple[Hold, LockedAccount]:
    """The hold, read again once its team's account is locked and due expiries written.
    NotFound for an unknown id, or one of another team than `team_id` (when given)."""
    parsed = parse_uuid(hold_id)
    if parsed is None:
        raise NotFound()
    owner = team_id
    if owner is None:
        # The caller did not say whose hold: found by its id alone (an index of its own on
        # PostgreSQL; every shard on Citus, so callers should send the team).
        found = await Hold.filter(id=parsed).using_db(tx.conn).values_list("team_id", flat=True)
        owner = parse_uuid(found[0]) if found else None
        if owner is None:
            raise NotFound()
    locked = await service.lock_account(owner, tx.conn)
    if locked.changed:
        await locked.flush()
        tx.credits_changed(locked.team_id)
    # Read after the flush: a hold that was due is EXPIRED by now.
    hold = await Hold.filter(team_id=owner, id=parsed).using_db(tx.conn).first()
    if hold is None:
        raise NotFound()  # another team's id, or none: rolls the transaction back
    return hold, locked


def _closed(hold: Hold) -> DomainError:
    return DomainError(
        ErrorCode.HOLD_CLOSED, f"The hold is {hold.status.value.lower()}: it cannot change."
    )


async def capture_hold(
    hold_id: object,
    amount: int,
    *,
    team_id: uuid.UUID | None = None,
    description: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> Capture:
    """Draws `amount` (at most the held amount) as one usage event and frees the rest.

    Capturing a captured hold answers its first capture. HOLD_CLOSED once released or
    expired; INVALID_AMOUNT above the held amount; CREDITS_EXHAUSTED or
    INVOICED_LIMIT_REACHED if credits went away meanwhile (expired, refunded): the hold
    then stays HELD.
    """
    check_text(description, "description", service.MAX_DESCRIPTION)
    dimensions = check_dimensions(dimensions)
    if amount <= 0:
        raise DomainError(
            ErrorCode.INVALID_AMOUNT,
            "amount must be greater than zero (release the hold to capture nothing)",
            "amount",
        )
    async with atomic() as tx:
        hold, locked = await _locked_hold(tx, hold_id, team_id)
        key = usage_key(hold.id)
        if hold.status is HoldStatus.CAPTURED:
            (record,) = await store.usage_by_keys(tx.conn, [hold.team_id], [key])
            return Capture(hold, record)
        if hold.status is not HoldStatus.HELD:
            raise _closed(hold)
        if amount > hold.amount:
            raise DomainError(
                ErrorCode.INVALID_AMOUNT,
                "amount is more than the hold reserves.",
                "amount",
            )
        locked.account.held -= hold.amount  # freed first: the capture draws what it held
        request = UsageRequest(
            team_id=hold.team_id,
            amount=amount,
            idempotency_key=key,
            description=description if description is not None else hold.description,
            dimensions=dimensions if dimensions is not None else hold.dimensions,
        )
        result = await service.draw_locked(tx, locked, request)
        if result.record is None:
            assert result.error is not None
            raise result.error  # rolls back: the hold stays HELD
        hold.status = HoldStatus.CAPTURED
        hold.captured = amount
        hold.usage_id = result.record.id
        if dimensions is not None:
            hold.dimensions = dimensions
        hold.updated_at = locked.now
        await hold.save(using_db=tx.conn)
    return Capture(hold, result.record)


async def release_hold(hold_id: object, *, team_id: uuid.UUID | None = None) -> Hold:
    """Frees the whole hold. A released or expired hold is answered as it is (its money
    is free already); HOLD_CLOSED once captured."""
    async with atomic() as tx:
        hold, locked = await _locked_hold(tx, hold_id, team_id)
        if hold.status is HoldStatus.CAPTURED:
            raise _closed(hold)
        if hold.status is HoldStatus.HELD:
            locked.account.held -= hold.amount
            hold.status = HoldStatus.RELEASED
            hold.updated_at = locked.now
            await hold.save(using_db=tx.conn)
            await locked.flush()
            tx.credits_changed(hold.team_id)
    return hold


# --- expiry --------------------------------------------------------------------------------


async def expire_due_holds() -> int:
    """The sweeper's pass: expires every team's due holds; returns the teams touched."""
    team_ids = (
        await Hold.filter(status=HoldStatus.HELD, expires_at__lte=clock.now())
        .distinct()
        .values_list("team_id", flat=True)
    )
    touched = 0
    for team_id in team_ids:
        assert isinstance(team_id, (uuid.UUID, str))  # values_list is untyped
        try:
            if await service.expire_due(uuid.UUID(str(team_id))):
                touched += 1
        except NotFound:  # the team was deleted meanwhile, its holds with it
            continue
    return touched


async def next_expiry() -> datetime | None:
    """When the earliest HELD hold expires (None without any)."""
    hold = await Hold.filter(status=HoldStatus.HELD).order_by("expires_at").first()
    return hold.expires_at if hold is not None else None


# --- reads ---------------------------------------------------------------------------------


def hold_cursor(hold: Hold) -> str:
    return encode_time_cursor(hold.created_at, hold.id)


async def team_holds(
    team_id: uuid.UUID, first: int | None, after: str | None, status: HoldStatus | None = None
) -> HoldPage:
    """A team's holds, newest first, optionally of one status (as `status_of` reads it)."""
    size = page_size(first)
    now = clock.now()
    query = Hold.filter(team_id=team_id)
    if status is HoldStatus.HELD:
        query = query.filter(status=HoldStatus.HELD, expires_at__gt=now)
    elif status is HoldStatus.EXPIRED:
        query = query.filter(
            Q(status=HoldStatus.EXPIRED) | Q(status=HoldStatus.HELD, expires_at__lte=now)
        )
    elif status is not None:
        query = query.filter(status=status)
    if after:
        created_at, last_id = decode_time_cursor(after)
        query = query.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=last_id)
        )
    rows = await query.order_by("-created_at", "-id").limit(size + 1)
    page = rows[:size]
    return HoldPage(page, len(rows) > size, [hold_cursor(h) for h in page])
