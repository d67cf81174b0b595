"""The credit ledger and the usage gate (docs/architecture.md, "Billing rules").

Every money movement of a team runs in one transaction that first locks the
team's `CreditAccount` row, so concurrent requests for one team apply one
after the other and balances can never go below zero.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app import tracing
from app.credits import dimensions, held, programs, rules, shards, store
from app.credits.models import (
    ClosedPeriod,
    CreditAccount,
    CreditKind,
    InvoicedPeriod,
    LedgerKind,
)
from app.credits.rules import BillingStatus
from app.credits.store import AccountRow, EntryRow, GrantRow, UsageRow
from app.events import outbox
from app.events.commit import Transaction, atomic, current
from app.kit import clock, text
from app.kit.errors import DomainError, ErrorCode, NotFound
from app.kit.ids import parse_uuid, time_ordered_id, uuid_order
from app.kit.money import MAX_UNITS, UNITS_PER_DOLLAR, format_units, parse_field
from app.teams.audit import service as audit
from app.teams.audit.models import AuditAction
from app.teams.models import Team

log = structlog.get_logger(__name__)

MAX_IDEMPOTENCY_KEY = 255
# A hold's capture records its usage under `hold:<hold id>` (credits/holds.py): usage
# sent by clients may not take such a key, or a capture's insert could collide with it.
HOLD_KEY_PREFIX = "hold:"
MAX_DESCRIPTION = 500
MAX_INVOICED_LIMIT = 1_000_000 * UNITS_PER_DOLLAR
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CreditsView:
    """A team's credits as of `as_of`; expired grants already left out."""

    free: int
    promotional: int
    prepaid: int
    invoiced_limit: int
    invoiced_this_month: int
    invoicing_suspended: bool
    grants: list[GrantRow]
    updated_at: datetime
    held: int = 0  # reserved by open holds
    team_id: uuid.UUID | None = None  # whose credits (the runway reads the team's usage)

    @property
    def total(self) -> int:
        return self.free + self.promotional + self.prepaid

    @property
    def available(self) -> int:
        """What the next usage event or hold may take (`rules.available`)."""
        return rules.available(self.total, self.invoiced_remaining, self.held)

    @property
    def invoiced_remaining(self) -> int:
        return rules.invoiced_headroom(
            self.invoiced_limit, self.invoiced_this_month, self.invoicing_suspended
        )

    @property
    def status(self) -> BillingStatus:
        return rules.billing_status(self.total, self.invoiced_limit, self.invoiced_remaining)


@dataclass(frozen=True, slots=True)
class UsageRequest:
    team_id: uuid.UUID
    amount: int
    idempotency_key: str
    description: str | None = None
    occurred_at: datetime | None = None
    dimensions: dict[str, str] | None = None  # checked by `validate_usage`; {} is None


@dataclass(slots=True)
class UsageResult:
    record: UsageRow | None = None
    error: DomainError | None = None
    not_found: bool = False


# --- consumption order -----------------------------------------------------------------


def _is_live(grant: GrantRow, now: datetime) -> bool:
    return grant.remaining > 0 and (grant.expires_at is None or grant.expires_at > now)


def consumption_key(grant: GrantRow) -> tuple[int, float, float, str]:
    """Free and promotional first (earliest expiry, then no expiry, older first), then prepaid."""
    if grant.kind is CreditKind.PREPAID:
        return (1, 0.0, grant.granted_at.timestamp(), str(grant.id))
    expiry = grant.expires_at.timestamp() if grant.expires_at else float("inf")
    return (0, expiry, grant.granted_at.timestamp(), str(grant.id))


async def _live_grants(
    team_id: uuid.UUID, now: datetime, conn: BaseDBAsyncClient
) -> list[GrantRow]:
    grants = [g for g in await store.live_grants(conn, [team_id]) if _is_live(g, now)]
    grants.sort(key=consumption_key)
    return grants


def _sums(grants: list[GrantRow]) -> dict[CreditKind, int]:
    sums = dict.fromkeys(CreditKind, 0)
    for grant in grants:
        sums[grant.kind] += grant.remaining
    return sums


# --- reads -------------------------------------------------------------------------------


async def credits_view(
    team_id: uuid.UUID, *, with_grants: bool = True, with_invoiced: bool = True
) -> CreditsView:
    """The team's credits now. A reader that needs neither the grant list nor the
    month's invoiced total (`credits { total }`) costs one query: the account row's
    cached balances are exact until its next grant expiry."""
    now = clock.now()
    conn = CreditAccount._meta.db  # the connection Tortoise would use for this read
    account = await store.account_balances(conn, team_id)
    if account is None:
        raise NotFound()
    expiry_due = account.next_expiry_at is not None and account.next_expiry_at <= now
    if with_grants or expiry_due:
        grants = await _live_grants(team_id, now, conn)
        sums = _sums(grants)
    else:
        grants = []
        sums = {
            CreditKind.FREE: account.free,
            CreditKind.PROMOTIONAL: account.promotional,
            CreditKind.PREPAID: account.prepaid,
        }
    invoiced = 0
    if with_invoiced:
        invoiced = await store.invoiced_amount(conn, team_id, clock.period_of(now))
    # Holds past their expiry still count in the row until the next locked write.
    holding = await held.open_amount(conn, team_id, now) if account.held else 0
    return CreditsView(
        free=sums[CreditKind.FREE],
        promotional=sums[CreditKind.PROMOTIONAL],
        prepaid=sums[CreditKind.PREPAID],
        invoiced_limit=account.invoiced_limit,
        invoiced_this_month=invoiced,
        invoicing_suspended=account.invoicing_suspended,
        grants=grants,
        updated_at=account.updated_at,
        held=holding,
        team_id=team_id,
    )


# --- the locked section --------------------------------------------------------------------


@dataclass
class LockedAccount:
    """A team's account row locked in the current transaction, with its live grants loaded.

    Collects every change and writes it in a few statements on `flush()`.
    """

    account: AccountRow
    conn: BaseDBAsyncClient
    now: datetime
    grants: list[GrantRow]
    _dirty_grants: dict[uuid.UUID, GrantRow] = field(default_factory=dict)
    _new_grants: list[GrantRow] = field(default_factory=list)
    _new_grant_ids: set[uuid.UUID] = field(default_factory=set)
    _entries: list[EntryRow] = field(default_factory=list)
    _expired_holds: list[uuid.UUID] = field(default_factory=list)  # written on flush
    team_id: uuid.UUID = field(init=False)  # read for every ledger entry: kept, not looked up

    def __post_init__(self) -> None:
        self.team_id = self.account.team_id

    def add_entry(
        self, grant: GrantRow, kind: LedgerKind, amount: int, usage: UsageRow | None = None
    ) -> None:
        # A plain tuple, not a LedgerEntry model: entries are only ever inserted.
        self._entries.append(
            (
                self.team_id,
                grant.id,
                kind.value,
                amount,
                usage.id if usage else None,
                self.now,
            )
        )

    def draw(self, grant: GrantRow, amount: int, kind: LedgerKind, usage: UsageRow | None) -> None:
        grant.remaining -= amount
        self.add_entry(grant, kind, -amount, usage)
        # A grant created in this transaction is inserted with its final remaining amount.
        if grant.id not in self._new_grant_ids:
            self._dirty_grants[grant.id] = grant

    def add_grant(
        self,
        kind: CreditKind,
        amount: int,
        *,
        description: str | None = None,
        expires_at: datetime | None = None,
    ) -> GrantRow:
        grant = GrantRow(
            id=uuid.uuid4(),
            team_id=self.team_id,
            kind=kind,
            amount=amount,
            remaining=amount,
            description=description,
            granted_at=self.now,
            expires_at=expires_at,
        )
        self._new_grants.append(grant)
        self._new_grant_ids.add(grant.id)
        self.add_entry(grant, LedgerKind.GRANT, amount)
        if _is_live(grant, self.now):
            self.grants.append(grant)
            self.grants.sort(key=consumption_key)
        return grant

    def withdraw(self, grant_id: uuid.UUID, amount: int) -> int:
        """Takes back up to `amount` of a grant's unspent credits; returns what was taken."""
        grant = next((g for g in self.grants if g.id == grant_id), None)
        if grant is None:
            return 0
        taken = min(int(grant.remaining), amount)
        if taken > 0:
            self.draw(grant, taken, LedgerKind.WITHDRAWAL, None)
        return taken

    def _settle(self) -> None:
        """Recomputes the cached balances from the live grants."""
        self.grants = [g for g in self.grants if _is_live(g, self.now)]
        sums = _sums(self.grants)
        expiries = [g.expires_at for g in self.grants if g.expires_at is not None]
        account = self.account
        account.free = sums[CreditKind.FREE]
        account.promotional = sums[CreditKind.PROMOTIONAL]
        account.prepaid = sums[CreditKind.PREPAID]
        account.next_expiry_at = min(expiries) if expiries else None
        account.updated_at = self.now

    @property
    def available(self) -> int:
        """Credits (free, promotional, prepaid) this account can still draw."""
        return sum(g.remaining for g in self.grants)

    @property
    def held(self) -> int:
        """What the team's open holds reserve (free of expired ones once locked)."""
        return self.account.held

    @property
    def changed(self) -> bool:
        return bool(self._new_grants or self._dirty_grants or self._entries or self._expired_holds)

    async def flush(self) -> None:
        """Writes grants, ledger entries and the account's cached balances."""
        await flush_accounts([self], self.conn)


async def flush_accounts(
    accounts: list[LockedAccount],
    conn: BaseDBAsyncClient,
    usage: Sequence[store.UsageRow] = (),
) -> None:
    """Writes the changes of several locked accounts, and the usage records that made
    them, in a few set-based statements (after new grants, one on PostgreSQL)."""
    new_grants = [g for a in accounts for g in a._new_grants]
    dirty = [g for a in accounts for g in a._dirty_grants.values()]
    entries = [e for a in accounts for e in a._entries]
    if new_grants:
        # First: ledger entries refer to them.
        await store.insert_grants(conn, new_grants)
    expired_holds = [h for a in accounts for h in a._expired_holds]
    if expired_holds:
        teams = [a.team_id for a in accounts if a._expired_holds]
        await held.mark_expired(conn, teams, expired_holds, accounts[0].now)
        tx = current()
        for locked in accounts:
            if locked._expired_holds:
                tx.announce(held.HoldsExpired(locked.team_id, tuple(locked._expired_holds)))
                for hold_id in locked._expired_holds:  # told by the outbox, same transaction
                    data = {"teamId": str(locked.team_id), "holdId": str(hold_id)}
                    await outbox.emit(tx, "hold.expired", data, team_id=locked.team_id)
    for locked in accounts:
        funded = bool(locked._new_grants)
        if funded:
            locked.account.funding_seq += 1  # credits added: a later drop is a new crossing
        locked._settle()
        if funded and locked.account.blocked and locked.account.total > 0:
            # Credits are back: told now (other ways back are found by the notifier).
            await programs.mark_unblocked(current(), locked.account)
        locked._new_grants.clear()
        locked._new_grant_ids.clear()
        locked._dirty_grants.clear()
        locked._entries.clear()
        locked._expired_holds.clear()
    if accounts or usage:
        await store.write_changes(conn, usage, dirty, entries, [a.account for a in accounts])


async def lock_accounts(
    team_ids: list[uuid.UUID], conn: BaseDBAsyncClient
) -> dict[uuid.UUID, LockedAccount]:
    """Locks several teams' account rows in team-id order (so concurrent callers never
    deadlock), loads their live grants and expires due grants and holds (written on
    flush). The rest of the transaction plans its statements as index probes. Unknown
    teams are simply absent from the result. Call inside `atomic()`, with its `tx.conn`.
    """
    ids = sorted(set(team_ids), key=uuid_order)
    # Every locked section reads and writes a few rows by key (docs/ingestion.md).
    await store.prefer_index_probes(conn)
    accounts = await store.lock_accounts(conn, ids)
    now = clock.now()
    locked: dict[uuid.UUID, LockedAccount] = {}
    for account in accounts:
        locked[account.team_id] = LockedAccount(account=account, conn=conn, now=now, grants=[])
    if not locked:
        return locked
    for grant in await store.live_grants(conn, list(locked)):
        owner = locked[grant.team_id]
        if grant.expires_at is not None and grant.expires_at <= now:
            owner.draw(grant, grant.remaining, LedgerKind.EXPIRY, None)
        else:
            owner.grants.append(grant)
    for owner in locked.values():
        owner.grants.sort(key=consumption_key)
    # Only teams holding something pay for the query: `held` is on the locked row.
    holding = [team_id for team_id, owner in locked.items() if owner.account.held]
    if holding:
        for hold_id, team_id, amount in await held.due(conn, holding, now):
            owner = locked[team_id]
            owner.account.held -= amount
            owner._expired_holds.append(hold_id)
    return locked


async def lock_account(team_id: uuid.UUID, conn: BaseDBAsyncClient) -> LockedAccount:
    """Locks the team's account row (first, always) and writes any due expiry.

    Call inside `atomic()`, with its `tx.conn`; raises NotFound for an unknown team.
    """
    locked = await lock_accounts([team_id], conn)
    if team_id not in locked:
        raise NotFound()
    return locked[team_id]


async def expire_due(team_id: uuid.UUID) -> bool:
    """Writes expiry entries for a team's grants that expired, and the expiry of its
    holds; True if any did."""
    async with atomic() as tx:
        locked = await lock_account(team_id, tx.conn)
        changed = locked.changed
        if changed:
            before = programs.cached_total(locked.account)
            await programs.credits_moved(tx, locked.account, before, locked.available)
            await locked.flush()
            tx.credits_changed(team_id)
    return changed


async def expire_all_due() -> int:
    """The periodic sweeper: expires due grants of every team; returns teams touched."""
    now = clock.now()
    team_ids = await CreditAccount.filter(next_expiry_at__lte=now).values_list("team_id", flat=True)
    touched = 0
    for team_id in team_ids:
        assert isinstance(team_id, uuid.UUID)  # values_list is untyped
        if await expire_due(team_id):
            touched += 1
    return touched


async def open_account(team: Team) -> None:
    """The new team's credit account, in the transaction that creates the team
    (a `teams.service.TeamOpener`)."""
    await CreditAccount.create(team=team, updated_at=clock.now())


# --- grants and the limit ----------------------------------------------------------------


async def grant_credits(
    team_id: uuid.UUID,
    kind: CreditKind,
    amount: int,
    *,
    description: str | None = None,
    expires_at: datetime | None = None,
) -> GrantRow:
    """An operator's grant (FREE, PROMOTIONAL, or PREPAID for a payment taken offline)."""
    text.check(description, "description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"At most {MAX_DESCRIPTION} characters.", "description"
        )
    if expires_at is not None and expires_at <= clock.now():
        raise DomainError(ErrorCode.INVALID_INPUT, "Expiry must be in the future.", "expiresAt")
    async with atomic() as tx:
        locked = await lock_account(team_id, tx.conn)
        refused = rules.balance_room(locked.account.total, amount)
        if refused is not None:
            raise refused
        grant = locked.add_grant(kind, amount, description=description, expires_at=expires_at)
        await locked.flush()
        tx.credits_changed(team_id)
    return grant


async def set_invoiced_limit(team_id: uuid.UUID, limit: int, *, actor: str = audit.SYSTEM) -> None:
    if limit > MAX_INVOICED_LIMIT:
        raise DomainError(ErrorCode.INVALID_AMOUNT, "The limit is at most 1000000.00.", "limit")
    async with atomic() as tx:
        conn = tx.conn
        locked = await lock_account(team_id, conn)
        if limit > locked.account.invoiced_limit:
            locked.account.funding_seq += 1  # headroom added: a later exhaustion alerts again
        old = locked.account.invoiced_limit
        locked.account.invoiced_limit = limit
        await locked.flush()
        if old != limit:
            await audit.record(
                conn,
                team_id,
                actor,
                AuditAction.INVOICED_LIMIT_CHANGED,
                {"limit": format_units(old)},
                {"limit": format_units(limit)},
            )
        tx.credits_changed(team_id)


# --- usage -------------------------------------------------------------------------------


def usage_request(
    team_id: str,
    amount: object,
    idempotency_key: str,
    *,
    description: str | None = None,
    occurred_at: datetime | None = None,
    dimensions_value: object = None,
) -> UsageRequest | DomainError:
    """A usage event as an interface received it (GraphQL, /v1), parsed into the service's
    request, or the error naming the field that does not parse. The content is checked by
    `validate_usage` when the event is recorded."""
    team = parse_uuid(team_id)
    if team is None:
        return DomainError(ErrorCode.NOT_FOUND, "No such team.", "teamId")
    try:
        units = parse_field(amount, "amount")
        parsed_dimensions = dimensions.parse(dimensions_value)
    except DomainError as error:
        return error
    instant = None
    if occurred_at is not None:
        instant = clock.to_utc(occurred_at)
        if instant is None:
            return DomainError(ErrorCode.INVALID_INPUT, "occurredAt is out of range.", "occurredAt")
    return UsageRequest(
        team_id=team,
        amount=units,
        idempotency_key=idempotency_key,
        description=description,
        occurred_at=instant,
        dimensions=parsed_dimensions,
    )


def validate_usage(request: UsageRequest) -> DomainError | None:
    """Checks that need no database; None when the request is well formed. Whatever
    passes can be stored: a value the database would refuse fails the whole
    transaction, and with it the other events sharing it."""
    if not 0 < request.amount <= MAX_UNITS:
        return DomainError(ErrorCode.INVALID_AMOUNT, "amount is out of range.", "amount")
    key = request.idempotency_key
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY or not text.is_storable(key):
        return DomainError(
            ErrorCode.INVALID_INPUT,
            f"The idempotency key takes 1 to {MAX_IDEMPOTENCY_KEY} characters, "
            "without NUL or lone surrogates.",
            "idempotencyKey",
        )
    if key.startswith(HOLD_KEY_PREFIX):
        return DomainError(
            ErrorCode.INVALID_INPUT,
            f'Idempotency keys starting with "{HOLD_KEY_PREFIX}" are kept for captured holds.',
            "idempotencyKey",
        )
    description = request.description
    if description is not None and (
        len(description) > MAX_DESCRIPTION or not text.is_storable(description)
    ):
        return DomainError(
            ErrorCode.INVALID_INPUT,
            f"At most {MAX_DESCRIPTION} characters, without NUL or lone surrogates.",
            "description",
        )
    if request.dimensions is not None:
        error = dimensions.problem(request.dimensions)
        if error is not None:
            return error
    if request.occurred_at is not None:
        if request.occurred_at.tzinfo is None:
            return DomainError(
                ErrorCode.INVALID_INPUT, "occurredAt needs a UTC offset.", "occurredAt"
            )
        now = clock.now()
        if request.occurred_at > now + FUTURE_TOLERANCE:
            return DomainError(
                ErrorCode.INVALID_INPUT, "occurredAt is too far in the future.", "occurredAt"
            )
        if request.occurred_at < clock.previous_month_start(now):
            return DomainError(
                ErrorCode.INVALID_INPUT, "occurredAt is before the previous month.", "occurredAt"
            )
    return None


def _same_request(record: UsageRow, request: UsageRequest) -> bool:
    if record.amount != request.amount or record.description != request.description:
        return False
    if (record.dimensions or None) != (request.dimensions or None):
        return False
    return request.occurred_at is None or record.occurred_at == request.occurred_at


EVENTS_PER_TRANSACTION = 250


def _chunks(
    requests: list[UsageRequest],
    indexes: list[int],
    shard_by_team: Mapping[uuid.UUID, int] | None = None,
) -> list[list[int]]:
    """Splits events into transactions of one shard's teams each (`shard_by_team`; None:
    one shard, as on plain PostgreSQL), of about `EVENTS_PER_TRANSACTION`, by ranges of
    team ids: a team's events stay together in input order, and each transaction locks
    a later range than the one before. Concurrent large batches then follow one another
    range by range instead of each waiting for another's whole batch to commit."""
    by_team: dict[uuid.UUID, list[int]] = {}
    for index in indexes:
        by_team.setdefault(requests[index].team_id, []).append(index)
    by_shard: dict[int, list[uuid.UUID]] = {}
    if shard_by_team is None:
        by_shard[shards.SINGLE] = list(by_team)
    else:
        for team_id in by_team:
            by_shard.setdefault(shard_by_team[team_id], []).append(team_id)
    if len(by_shard) == 1 and (len(by_team) == 1 or len(indexes) <= EVENTS_PER_TRANSACTION):
        return [indexes] if indexes else []
    chunks: list[list[int]] = []
    for shard in sorted(by_shard):
        chunks.append([])
        for team_id in sorted(by_shard[shard], key=uuid_order):
            if len(chunks[-1]) >= EVENTS_PER_TRANSACTION:
                chunks.append([])
            chunks[-1].extend(by_team[team_id])
    return chunks


async def record_usage(requests: list[UsageRequest]) -> list[UsageResult]:
    """Applies usage events; one result per request, in input order.

    Events go into transactions that lock their teams' account rows in team-id order
    (one transaction unless there are many teams, or teams of several shards on Citus);
    each event is applied all or nothing on its own, a team's events in input order.
    """
    results = [UsageResult() for _ in requests]
    valid: list[int] = []
    for index, request in enumerate(requests):
        error = validate_usage(request)
        if error is not None:
            results[index].error = error
        else:
            valid.append(index)
    shard_by_team = await _shards([requests[i].team_id for i in valid])
    chunks = _chunks(requests, valid, shard_by_team)
    if len(chunks) > 1 and _concurrent_transactions():
        # The chunks lock disjoint sets of teams, so they commit side by side on their
        # own connections instead of one after another: a large batch then waits for
        # one round of transactions, not four (docs/ingestion.md, "Large batches").
        gate = asyncio.Semaphore(MAX_CONCURRENT_CHUNKS)

        async def apply(chunk: list[int]) -> list[UsageResult]:
            async with gate:
                return await _apply_isolated([requests[i] for i in chunk])

        outcomes = await asyncio.gather(*(apply(chunk) for chunk in chunks))
    else:
        outcomes = [await _apply_isolated([requests[i] for i in chunk]) for chunk in chunks]
    for chunk, applied in zip(chunks, outcomes, strict=True):
        for index, result in zip(chunk, applied, strict=True):
            results[index] = result
    return results


MAX_CONCURRENT_CHUNKS = 4


async def _shards(team_ids: list[uuid.UUID]) -> dict[uuid.UUID, int] | None:
    """Each team's shard when there can be more than one (Citus, or a test's placement);
    None on one database, which is one shard (nothing to ask, nothing to group)."""
    if shards.single():
        return None
    known: dict[uuid.UUID, int] = {}
    for team_id in team_ids:
        shard = shards.cached(team_id)
        if shard is None:
            return await shards.shards_of(team_ids)
        known[team_id] = shard
    if len(set(known.values())) <= 1:
        return None
    return known


def _concurrent_transactions() -> bool:
    """PostgreSQL runs a batch's transactions side by side; SQLite has one writer."""
    dialect: str = connections.get("default").capabilities.dialect
    return dialect == "postgres"


async def _apply_isolated(requests: list[UsageRequest]) -> list[UsageResult]:
    """`_apply_usage`, so that no event can fail another: when the shared transaction
    fails (the database refused something no check foresaw), it rolled back whole and
    its halves are applied again on their own, down to the one event that fails, which
    alone gets an INTERNAL error. A retry is safe: nothing of the failed transaction
    was stored, and an event that did commit replays under its idempotency key. The
    halves keep input order, so a team's events still apply in the order given."""
    try:
        return await _apply_usage(requests)
    except Exception as exc:  # any failure is isolated, then logged
        if len(requests) > 1:
            middle = len(requests) // 2
            return await _apply_isolated(requests[:middle]) + await _apply_isolated(
                requests[middle:]
            )
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "credits.usage_event_failed",
            error_id=error_id,
            team_id=str(requests[0].team_id),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        message = f"This event could not be recorded (error {error_id}); retry it."
        return [UsageResult(error=DomainError(ErrorCode.INTERNAL, message))]


_KEY_REUSED = "This idempotency key was used with other parameters."
_REFUSALS = (ErrorCode.CREDITS_EXHAUSTED, ErrorCode.INVOICED_LIMIT_REACHED)


async def _apply_usage(requests: list[UsageRequest]) -> list[UsageResult]:
    with tracing.span("usage.write", {"usage.events": len(requests)}):
        return await _apply_usage_in_transaction(requests)


async def _apply_usage_in_transaction(requests: list[UsageRequest]) -> list[UsageResult]:
    results: list[UsageResult] = []
    records: list[UsageRow] = []
    async with atomic() as tx:
        conn = tx.conn
        locked = await lock_accounts([r.team_id for r in requests], conn)
        now = clock.now()
        current_period = clock.period_of(now)
        pairs = {(r.team_id, r.idempotency_key) for r in requests if r.team_id in locked}
        seen: dict[tuple[object, str], UsageRow] = {}
        if pairs:
            for record in await store.usage_by_pairs(conn, list(pairs)):
                seen[(record.team_id, record.idempotency_key)] = record
        periods: dict[tuple[uuid.UUID, str], InvoicedPeriod] = {}
        invoiced_before: dict[tuple[uuid.UUID, str], int] = {}  # for the 80%/100% alerts
        refused: set[uuid.UUID] = set()  # teams refused for want of money (team.blocked)
        closed: dict[str, bool] = {}
        for request in requests:
            account = locked.get(request.team_id)
            if account is None:
                results.append(UsageResult(not_found=True))
                continue
            replay = seen.get((request.team_id, request.idempotency_key))
            if replay is not None:
                if _same_request(replay, request):
                    results.append(UsageResult(record=replay))
                else:
                    error = DomainError(
                        ErrorCode.IDEMPOTENCY_KEY_REUSED, _KEY_REUSED, "idempotencyKey"
                    )
                    results.append(UsageResult(error=error))
                continue
            occurred_at = request.occurred_at or now
            # Most events are stamped now: formatting their period once per batch is enough.
            period = current_period if request.occurred_at is None else clock.period_of(occurred_at)
            if period != current_period:
                if period not in closed:
                    query = ClosedPeriod.filter(period=period).using_db(conn)
                    closed[period] = await query.exists()
                if closed[period]:
                    error = DomainError(
                        ErrorCode.PERIOD_CLOSED, f"The period {period} is closed.", "occurredAt"
                    )
                    results.append(UsageResult(error=error))
                    continue
            invoiced = None
            if request.amount > account.available - account.held:
                # Only events that reach the invoiced tier read the month's invoiced total.
                invoiced = await _invoiced_row(
                    conn, request.team_id, period, periods, invoiced_before
                )
            result = _draw(account, request, occurred_at, period, invoiced)
            if result.record is not None:
                records.append(result.record)
                seen[(request.team_id, request.idempotency_key)] = result.record
            elif result.error is not None and result.error.code in _REFUSALS:
                refused.add(request.team_id)
            results.append(result)
        if records:
            totals = [(r.team_id, r.period, r.amount) for r in periods.values() if r.amount]
            await store.write_invoiced(conn, totals)
        # Alerts and the auto top-up intent; in memory unless a threshold was crossed.
        await programs.after_usage(tx, locked, periods, invoiced_before, refused)
        # Usage drawn wholly from the invoiced tier moves no grant but still changes what
        # the team sees (invoiced this month): stamp and announce those accounts too.
        used = {record.team_id for record in records}
        changed = [a for a in locked.values() if a.changed or a.team_id in used]
        if changed:
            # The usage records go with the accounts' writes (every record's team changed).
            await flush_accounts(changed, conn, records)
            for account in changed:
                tx.credits_changed(account.team_id)  # published together after the commit
    return results


def _draw(
    locked: LockedAccount,
    request: UsageRequest,
    occurred_at: datetime,
    period: str,
    invoiced: InvoicedPeriod | None,
) -> UsageResult:
    """Takes one event from free/promotional, then prepaid, then the invoiced headroom.

    `invoiced` is the month's invoiced row, needed only when credits not held do not
    cover the event.
    """
    if invoiced is not None:
        account = locked.account
        limit = account.invoiced_limit
        headroom = rules.invoiced_headroom(limit, invoiced.amount, account.invoicing_suspended)
        if request.amount > rules.available(locked.available, headroom, locked.held):
            return UsageResult(error=rules.refusal(limit))
    record = UsageRow(
        id=time_ordered_id(),
        team_id=locked.team_id,
        idempotency_key=request.idempotency_key,
        amount=request.amount,
        from_free=0,
        from_promotional=0,
        from_prepaid=0,
        invoiced=0,
        description=request.description,
        occurred_at=occurred_at,
        occurred_at_given=request.occurred_at is not None,
        period=period,
        created_at=locked.now,
        dimensions=request.dimensions or None,
    )
    left = request.amount
    for grant in locked.grants:
        if left == 0:
            break
        take = min(grant.remaining, left)
        if take == 0:
            continue
        locked.draw(grant, take, LedgerKind.USAGE, record)
        left -= take
        if grant.kind is CreditKind.FREE:
            record.from_free += take
        elif grant.kind is CreditKind.PROMOTIONAL:
            record.from_promotional += take
        else:
            record.from_prepaid += take
    locked.grants = [g for g in locked.grants if g.remaining > 0]
    record.invoiced = left
    if left:
        assert invoiced is not None
        invoiced.amount += left
    return UsageResult(record=record)


async def _invoiced_row(
    conn: BaseDBAsyncClient,
    team_id: uuid.UUID,
    period: str,
    periods: dict[tuple[uuid.UUID, str], InvoicedPeriod],
    invoiced_before: dict[tuple[uuid.UUID, str], int],
) -> InvoicedPeriod:
    """The team's invoiced row of `period`, read once per transaction (a new one at 0),
    its amount before this transaction kept for the 80%/100% alerts."""
    key = (team_id, period)
    row = periods.get(key)
    if row is None:
        query = InvoicedPeriod.filter(team_id=team_id, period=period).using_db(conn)
        row = await query.first() or InvoicedPeriod(team_id=team_id, period=period, amount=0)
        periods[key] = row
        invoiced_before[key] = row.amount
    return row


async def draw_locked(tx: Transaction, locked: LockedAccount, request: UsageRequest) -> UsageResult:
    """One usage event, stamped now, on an account the caller has locked (a hold's
    capture): `record_usage`'s gate and order, written with the account on success.
    No idempotency probe: the caller owns the key."""
    conn = tx.conn
    team_id = locked.team_id
    period = clock.period_of(locked.now)
    periods: dict[tuple[uuid.UUID, str], InvoicedPeriod] = {}
    invoiced_before: dict[tuple[uuid.UUID, str], int] = {}
    invoiced = None
    if request.amount > locked.available - locked.held:
        invoiced = await _invoiced_row(conn, team_id, period, periods, invoiced_before)
    result = _draw(locked, request, locked.now, period, invoiced)
    if result.record is None:
        return result
    if invoiced is not None and invoiced.amount:
        await store.write_invoiced(conn, [(team_id, invoiced.period, invoiced.amount)])
    await programs.after_usage(tx, {team_id: locked}, periods, invoiced_before)
    await flush_accounts([locked], conn, [result.record])
    tx.credits_changed(team_id)
    return result
