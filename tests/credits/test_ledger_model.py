"""Model-based test of the ledger: random sequences against a small reference model.

A Hypothesis state machine drives the real services (grants with and without expiry,
usage and batches with idempotency replays and late events, limit changes, purchases
that succeed, fail or are refunded with Stripe faked at its gateway, month closes and
invoice retries, time moving across expiries and month ends) and a plain-Python model of
the billing rules side by side. After every step: each team's balances equal the model's,
nothing is below zero, each grant's remaining equals the model's and its amount minus its
ledger draws (`creditline audit`), and every monthly invoice bills exactly the model's
invoiced usage.

The machine runs in a worker thread; each step runs the services on the test's event loop
(where the database connections live) and waits for them.

Profiles: `LEDGER_MODEL_PROFILE=ci` (default, bounded for CI) or `long`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.billing import collection, purchases, stripe_events
from app.billing.ledger_audit import audit
from app.config import Settings
from app.credits import service as credits
from app.credits.models import CreditAccount, CreditGrant, CreditKind
from app.invoices import close
from app.invoices import collection as invoice_collection
from app.invoices.models import Invoice, InvoiceKind, InvoiceLine
from app.kit import clock
from app.payments import events as stripe_event_types
from app.payments import gateway as payment_gateway
from app.payments.models import PaymentMethod, PaymentMethodType, Purchase, PurchaseStatus
from app.payments.stripe import PaymentDeclined, PaymentIntentResult
from app.teams.models import Team
from tests.support.db import empty
from tests.support.payments import charge_event

T = TypeVar("T")
# What the runs exercised (printed at the end: `pytest -s` shows it).
STATS: Counter[str] = Counter()
UNITS_PER_CENT = 1_000_000
START = datetime(2026, 1, 27, 9, 30, tzinfo=UTC)

settings.register_profile(
    "ledger-ci",
    max_examples=15,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "ledger-long",
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE_NAME = "ledger-" + os.environ.get("LEDGER_MODEL_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME)


# --- the reference model ------------------------------------------------------------------------


@dataclass
class MGrant:
    id: uuid.UUID
    team: int
    kind: CreditKind
    amount: int
    remaining: int
    granted_at: datetime
    expires_at: datetime | None

    def live(self, now: datetime) -> bool:
        return self.remaining > 0 and (self.expires_at is None or self.expires_at > now)


@dataclass
class MPurchase:
    id: uuid.UUID
    team: int
    amount: int
    grant: MGrant
    intent_id: str
    refunded_cents: int = 0
    withdrawn: int = 0


@dataclass
class Model:
    now: datetime
    teams: int
    grants: list[MGrant] = field(default_factory=list)
    limit: dict[int, int] = field(default_factory=dict)
    suspended: dict[int, bool] = field(default_factory=dict)
    invoiced: dict[tuple[int, str], int] = field(default_factory=dict)
    # Accepted usage by (team, key): (amount, from_free, from_promotional, from_prepaid, invoiced)
    usage: dict[tuple[int, str], tuple[int, int, int, int, int]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    # Issued monthly invoices: (team, period) -> "PAID" | "PAYMENT_FAILED"
    invoices: dict[tuple[int, str], str] = field(default_factory=dict)
    declines: dict[int, bool] = field(default_factory=dict)
    purchases: list[MPurchase] = field(default_factory=list)

    def period(self, at: datetime | None = None) -> str:
        return (at or self.now).strftime("%Y-%m")

    def live(self, team: int) -> list[MGrant]:
        def key(g: MGrant) -> tuple[int, float, float, str]:
            if g.kind is CreditKind.PREPAID:
                return (1, 0.0, g.granted_at.timestamp(), str(g.id))
            expiry = g.expires_at.timestamp() if g.expires_at else float("inf")
            return (0, expiry, g.granted_at.timestamp(), str(g.id))

        return sorted((g for g in self.grants if g.team == team and g.live(self.now)), key=key)

    def balance(self, team: int, kind: CreditKind) -> int:
        return sum(g.remaining for g in self.live(team) if g.kind is kind)

    def use(self, team: int, key: str, amount: int, at: datetime | None = None) -> Any:
        """The outcome the rules predict: a parts tuple when accepted, else an error code."""
        period = self.period(at)
        seen = self.usage.get((team, key))
        if seen is not None:
            return seen if seen[0] == amount else "IDEMPOTENCY_KEY_REUSED"
        if period in self.closed:
            return "PERIOD_CLOSED"
        grants = self.live(team)
        invoiced = self.invoiced.get((team, period), 0)
        limit = self.limit.get(team, 0)
        headroom = 0 if self.suspended.get(team) else max(limit - invoiced, 0)
        if amount > sum(g.remaining for g in grants) + headroom:
            return "CREDITS_EXHAUSTED" if limit == 0 else "INVOICED_LIMIT_REACHED"
        parts = dict.fromkeys(CreditKind, 0)
        left = amount
        for grant in grants:
            take = min(grant.remaining, left)
            grant.remaining -= take
            parts[grant.kind] += take
            left -= take
        self.invoiced[(team, period)] = invoiced + left
        outcome = (
            amount,
            parts[CreditKind.FREE],
            parts[CreditKind.PROMOTIONAL],
            parts[CreditKind.PREPAID],
            left,
        )
        self.usage[(team, key)] = outcome
        return outcome


# --- Stripe, faked at the gateway ------------------------------------------------------------------


class FakeGateway:
    """Answers like Stripe for the calls purchases and the monthly charge make."""

    def __init__(self, machine: LedgerMachine) -> None:
        self.machine = machine
        self.intents = 0

    async def create_customer(self, team_id: str, *_args: Any, **_kwargs: Any) -> str:
        return f"cus_{team_id[:8]}"

    async def create_payment_intent(
        self, amount_cents: int, _customer: str, _pm: str, **kwargs: Any
    ) -> PaymentIntentResult:
        self.intents += 1
        intent_id = f"pi_model_{self.intents}_{uuid.uuid4().hex[:8]}"
        team = self.machine.team_index[uuid.UUID(kwargs["metadata"]["team_id"])]
        if self.machine.model.declines.get(team):
            raise PaymentDeclined("Your card was declined.", intent_id, "card_declined")
        return PaymentIntentResult(intent_id, "succeeded", None, None, amount_cents)

    async def detach_payment_method(self, _pm: str) -> None:
        return None

    async def set_default_payment_method(self, *_args: Any) -> None:
        return None


# --- the machine -------------------------------------------------------------------------------

TEAMS = 2
kinds = st.sampled_from([CreditKind.FREE, CreditKind.PROMOTIONAL, CreditKind.PREPAID])
teams = st.integers(0, TEAMS - 1)
usage_amounts = st.one_of(st.integers(1, 20_000), st.integers(1, 400_000_000))
dollar_cents = st.integers(1, 5_000)


class LedgerMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    database: Settings

    def __init__(self) -> None:
        super().__init__()
        clock.freeze(START)
        self.model = Model(now=START, teams=TEAMS)
        self.team_ids: list[uuid.UUID] = []
        self.team_index: dict[uuid.UUID, int] = {}
        self.keys: list[tuple[int, str]] = []
        self.steps = 0
        self.run(self._setup())
        # Team 1 starts on monthly invoicing ($20), so invoices and their charges come often.
        self.run(credits.set_invoiced_limit(self.team_ids[1], 2_000 * UNITS_PER_CENT))
        self.model.limit[1] = 2_000 * UNITS_PER_CENT

    # - plumbing

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wait() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout=120)

    async def _setup(self) -> None:
        await empty(self.database)
        for i in range(TEAMS):
            team = await Team.create(id=uuid.uuid4(), name=f"model {i}", created_at=START)
            await CreditAccount.create(team=team, updated_at=START)
            await PaymentMethod.create(
                id=uuid.uuid4(),
                team=team,
                stripe_id=f"pm_model_{uuid.uuid4().hex[:12]}",
                type=PaymentMethodType.CARD,
                brand="visa",
                last4="4242",
                is_default=True,
                created_at=START,
            )
            self.team_ids.append(team.id)
            self.team_index[team.id] = i

    def _advance_to(self, instant: datetime) -> None:
        clock.freeze(instant)
        self.model.now = instant

    # - rules: credits

    @rule(
        team=teams,
        kind=kinds,
        cents=dollar_cents,
        hours=st.sampled_from([None, None, 1, 30, 24 * 3, 24 * 20, 24 * 45]),
    )
    def grant(self, team: int, kind: CreditKind, cents: int, hours: int | None) -> None:
        amount = cents * UNITS_PER_CENT
        expires = self.model.now + timedelta(hours=hours) if hours else None
        made = self.run(
            credits.grant_credits(self.team_ids[team], kind, amount, expires_at=expires)
        )
        assert isinstance(made.id, uuid.UUID)
        self.model.grants.append(
            MGrant(made.id, team, kind, amount, amount, made.granted_at, expires)
        )
        STATS["grant " + ("expiring" if expires else "lasting")] += 1

    @rule(team=teams, cents=st.sampled_from([0, 1, 500, 2_000, 50_000]))
    def set_limit(self, team: int, cents: int) -> None:
        self.run(credits.set_invoiced_limit(self.team_ids[team], cents * UNITS_PER_CENT))
        self.model.limit[team] = cents * UNITS_PER_CENT

    # - rules: usage

    def _key(self, data: st.DataObject, team: int) -> str:
        known = [k for t, k in self.keys if t == team]
        if known and data.draw(st.booleans(), label="replay"):
            return data.draw(st.sampled_from(known), label="replayed key")
        key = f"k{len(self.keys)}"
        self.keys.append((team, key))
        return key

    def _amount_for(self, data: st.DataObject, team: int, key: str) -> int:
        seen = self.model.usage.get((team, key))
        if seen is not None and data.draw(st.booleans(), label="same parameters"):
            return seen[0]
        return data.draw(usage_amounts, label="amount")

    def _check(self, request: credits.UsageRequest, result: credits.UsageResult) -> None:
        team = self.team_index[request.team_id]
        expected = self.model.use(
            team, request.idempotency_key, request.amount, request.occurred_at
        )
        STATS["usage " + (expected if isinstance(expected, str) else "accepted")] += 1
        if isinstance(expected, str):
            assert result.error is not None, (request, expected)
            assert result.error.code.value == expected, (request, result.error.code, expected)
            return
        assert result.error is None, (request, result.error.code, expected)
        record = result.record
        assert record is not None
        got = (
            record.amount,
            record.from_free,
            record.from_promotional,
            record.from_prepaid,
            record.invoiced,
        )
        assert got == expected, (request, got, expected)

    @rule(team=teams, data=st.data())
    def usage(self, team: int, data: st.DataObject) -> None:
        key = self._key(data, team)
        request = credits.UsageRequest(self.team_ids[team], self._amount_for(data, team, key), key)
        (result,) = self.run(credits.record_usage([request]))
        self._check(request, result)

    @rule(data=st.data(), size=st.integers(2, 6))
    def usage_batch(self, data: st.DataObject, size: int) -> None:
        requests = []
        for _ in range(size):
            team = data.draw(teams, label="team")
            key = self._key(data, team)
            amount = self._amount_for(data, team, key)
            requests.append(credits.UsageRequest(self.team_ids[team], amount, key))
        results = self.run(credits.record_usage(requests))
        for request, result in zip(requests, results, strict=True):
            self._check(request, result)

    @rule(team=teams, amount=usage_amounts)
    def late_usage(self, team: int, amount: int) -> None:
        """An event dated in the previous month (the gateway's backlog)."""
        at = clock.month_start(self.model.now) - timedelta(minutes=30)
        key = f"late{len(self.keys)}"
        self.keys.append((team, key))
        request = credits.UsageRequest(self.team_ids[team], amount, key, occurred_at=at)
        (result,) = self.run(credits.record_usage([request]))
        self._check(request, result)

    # - rules: payments

    @rule(team=teams)
    def toggle_card(self, team: int) -> None:
        self.model.declines[team] = not self.model.declines.get(team, False)

    @rule(team=teams, dollars=st.integers(5, 60))
    def purchase(self, team: int, dollars: int) -> None:
        amount = dollars * 100 * UNITS_PER_CENT
        bought = self.run(purchases.purchase_credits(self.team_ids[team], amount))
        STATS["purchase " + bought.status.value] += 1
        if self.model.declines.get(team):
            assert bought.status is PurchaseStatus.FAILED
            assert bought.grant_id is None
            return
        assert bought.status is PurchaseStatus.SUCCEEDED, bought.failure_reason
        grant = self.run(CreditGrant.get(id=bought.grant_id))
        assert grant.kind is CreditKind.PREPAID
        assert grant.amount == amount
        mgrant = MGrant(grant.id, team, CreditKind.PREPAID, amount, amount, grant.granted_at, None)
        self.model.grants.append(mgrant)
        assert bought.payment_intent_id is not None
        self.model.purchases.append(
            MPurchase(bought.id, team, amount, mgrant, bought.payment_intent_id)
        )

    @precondition(lambda self: bool(self.model.purchases))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        """Stripe reports a (cumulative) refund: the unspent part of it is withdrawn."""
        bought = data.draw(st.sampled_from(self.model.purchases), label="purchase")
        cents = bought.amount // UNITS_PER_CENT
        refunded = data.draw(st.integers(bought.refunded_cents, cents), label="refunded cents")
        event = charge_event(
            "charge.refunded", intent_id=bought.intent_id, amount_cents=cents,
            refunded_cents=refunded,
        )  # fmt: skip
        self.run(stripe_events.handle_event(stripe_event_types.parse_event(event)))
        bought.refunded_cents = max(bought.refunded_cents, refunded)
        due = min(bought.amount, bought.refunded_cents * UNITS_PER_CENT) - bought.withdrawn
        taken = min(bought.grant.remaining, max(due, 0))
        bought.grant.remaining -= taken
        bought.withdrawn += taken
        STATS["refund withdrawing " + ("some" if taken else "nothing")] += 1
        stored = self.run(Purchase.get(id=bought.id))
        assert stored.withdrawn_amount == bought.withdrawn

    # - rules: time and the monthly close

    @rule(
        step=st.sampled_from(
            [timedelta(minutes=7), timedelta(hours=5), timedelta(days=1), timedelta(days=9)]
        )
    )
    def advance(self, step: timedelta) -> None:
        self._advance_to(self.model.now + step)

    @rule(data=st.data())
    def advance_to_an_edge(self, data: st.DataObject) -> None:
        """To the instant a grant expires, or just past the month's end."""
        edges = [clock.next_month_start(self.model.now) + timedelta(seconds=1)]
        edges += [
            g.expires_at
            for g in self.model.grants
            if g.expires_at and g.expires_at > self.model.now
        ]
        self._advance_to(data.draw(st.sampled_from(edges), label="edge"))

    @precondition(lambda self: close.previous_period(self.model.now) not in self.model.closed)
    @rule()
    def close_month(self) -> None:
        period = close.previous_period(self.model.now)
        self.run(collection.close_month(period))
        if period in self.model.closed:
            return
        self.model.closed.add(period)
        for team in range(TEAMS):
            units = self.model.invoiced.get((team, period), 0)
            if units <= 0:
                continue
            cents = (units + UNITS_PER_CENT // 2) // UNITS_PER_CENT
            declined = self.model.declines.get(team, False)
            STATS["monthly invoice " + ("declined" if declined else "paid")] += 1
            if cents == 0:
                self.model.invoices[(team, period)] = "PAID"  # nothing to charge
            elif cents < invoice_collection.MIN_CHARGE_CENTS:
                # Under Stripe's smallest charge: left OPEN, never charged, nothing suspended.
                self.model.invoices[(team, period)] = "OPEN"
            elif self.model.declines.get(team):
                self.model.invoices[(team, period)] = "PAYMENT_FAILED"
                self.model.suspended[team] = True
            else:
                self.model.invoices[(team, period)] = "PAID"

    @precondition(lambda self: "PAYMENT_FAILED" in self.model.invoices.values())
    @rule()
    def retry_invoice_payments(self) -> None:
        self.run(collection.retry_payments(due_only=False))
        for (team, period), status in list(self.model.invoices.items()):
            if status == "PAYMENT_FAILED" and not self.model.declines.get(team):
                self.model.invoices[(team, period)] = "PAID"
        for team in range(TEAMS):
            failed = any(
                s == "PAYMENT_FAILED" for (t, _), s in self.model.invoices.items() if t == team
            )
            if self.model.suspended.get(team) and not failed:
                self.model.suspended[team] = False

    # - after every step

    @invariant()
    def matches_the_model(self) -> None:
        self.steps += 1
        STATS["checks"] += 1
        self.run(self._compare())

    async def _compare(self) -> None:
        model, now = self.model, self.model.now
        for team, team_id in enumerate(self.team_ids):
            view = await credits.credits_view(team_id)
            got = (view.free, view.promotional, view.prepaid)
            want = tuple(model.balance(team, k) for k in CreditKind)
            assert got == want, (team, got, want)
            assert min(got) >= 0
            assert view.invoiced_limit == model.limit.get(team, 0)
            assert view.invoiced_this_month == model.invoiced.get((team, model.period()), 0)
            assert view.invoicing_suspended == model.suspended.get(team, False)
        stored = {g.id: g for g in await CreditGrant.all()}
        assert len(stored) == len(model.grants)
        for grant in model.grants:
            row = stored[grant.id]
            assert row.remaining >= 0
            live_row = row.remaining if row.expires_at is None or row.expires_at > now else 0
            live_model = grant.remaining if grant.live(now) else 0
            assert live_row == live_model, (grant, row.remaining)
        # The stored invariants: grant remaining == amount - draws, cached balances, usage
        # parts == draws, invoiced periods == usage, monthly invoices == invoiced usage.
        found = await audit()
        assert found == [], [str(d) for d in found]
        monthly = await Invoice.filter(kind=InvoiceKind.MONTHLY_USAGE)
        issued = {}
        for invoice in monthly:
            team = self.team_index[invoice.team_id]  # type: ignore[index]
            lines = await InvoiceLine.filter(invoice_id=invoice.id)
            units = sum(line.exact_units or 0 for line in lines)
            assert units == model.invoiced[(team, str(invoice.period))]
            issued[(team, str(invoice.period))] = invoice.status.value
        assert issued == model.invoices


async def test_the_ledger_matches_a_reference_model(
    database: Settings, stripe_gateway: Any
) -> None:
    loop = asyncio.get_running_loop()
    fake: list[FakeGateway] = []

    class Machine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__()
            gateway = FakeGateway(self)
            fake.append(gateway)
            payment_gateway.set_gateway(gateway)  # type: ignore[arg-type]

    Machine.loop = loop
    Machine.database = database
    original = payment_gateway.gateway()
    try:
        await loop.run_in_executor(None, _run, Machine)
    finally:
        payment_gateway.set_gateway(original)
        clock.reset()
    assert fake, "the machine never ran"
    print(f"\nledger model ({PROFILE_NAME}): {len(fake)} runs, {dict(sorted(STATS.items()))}")


def _run(machine: type[LedgerMachine]) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=PROFILE)
