"""`creditline audit`: checks the ledger's invariants on a live database.

The invariants (docs/architecture.md, "Money"):

- each grant's remaining equals the sum of its ledger entries (its +amount GRANT entry
  minus every draw), and is never below zero nor above the amount;
- each team's cached balances (free, promotional, prepaid on `CreditAccount`) equal the
  sums over its live grants, as of the account's last write (`updated_at`): a grant that
  expired since then is swept lazily by the next locked write, exactly as
  `app/credits/service.py` does, and is not a discrepancy until then;
- each usage record's parts add up to its amount, and its ledger draws equal its free,
  promotional and prepaid parts;
- each team-period's `InvoicedPeriod.amount` equals the sum of its records' invoiced part;
- each `MONTHLY_USAGE` invoice bills exactly the invoiced usage of its team-period;
- each account's `held` equals the sum of its team's HELD holds, and each captured hold
  has its one usage record (key `hold:<id>`, amount the captured amount).

Everything is read with a few aggregate queries (plain SQL that SQLite and PostgreSQL
both speak), so it runs on a large database in seconds. It takes no lock: run it on a
quiet database (after a load test, or against a replica) for an exact answer; on a busy
one, a movement committed between two queries can show as a transient discrepancy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.models import Model

from app.credits.models import (
    CreditAccount,
    CreditGrant,
    CreditKind,
    Hold,
    HoldStatus,
    InvoicedPeriod,
    LedgerEntry,
    LedgerKind,
    UsageRecord,
)
from app.invoices.models import Invoice, InvoiceLine
from app.kit.money import format_units, units_to_cents_half_up


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One broken invariant: which check, which object, what was expected and found."""

    check: str
    subject: str
    expected: str
    actual: str
    team_id: str | None = None

    def __str__(self) -> str:
        team = f" team {self.team_id}" if self.team_id else ""
        return f"[{self.check}]{team} {self.subject}: expected {self.expected}, found {self.actual}"


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """What the audit looked at, for the report."""

    teams: int
    grants: int
    ledger_entries: int
    usage_records: int
    invoiced_periods: int
    monthly_invoices: int
    holds: int = 0


def _table(model: type[Model]) -> str:
    return model._meta.db_table


def _id(value: Any) -> str:
    # SQLite hands UUIDs back as text, PostgreSQL as uuid.UUID.
    return str(value)


def _int(value: Any) -> int:
    # PostgreSQL's SUM(bigint) is numeric (a Decimal); SQLite's is an int; NULL when empty.
    return 0 if value is None else int(value)


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    # SQLite stores datetimes as ISO text.
    return datetime.fromisoformat(str(value))


async def _rows(sql: str) -> list[dict[str, Any]]:
    conn = connections.get("default")
    return list(await conn.execute_query_dict(sql))


def _money(units: int) -> str:
    return format_units(units)


async def _check_grants(found: list[Discrepancy]) -> dict[str, dict[str, Any]]:
    """Grant remaining vs ledger, bounds, and the one GRANT entry; returns the grants by id."""
    grants_table, ledger_table = _table(CreditGrant), _table(LedgerEntry)
    grants = {
        _id(row["id"]): row
        for row in await _rows(
            f'SELECT id, team_id, kind, amount, remaining, expires_at FROM "{grants_table}"'
        )
    }
    sums = {
        _id(row["grant_id"]): row
        for row in await _rows(
            f"SELECT grant_id, SUM(amount) AS total, "
            f"SUM(CASE WHEN kind = '{LedgerKind.GRANT.value}' THEN amount ELSE 0 END) AS granted, "
            f"SUM(CASE WHEN kind = '{LedgerKind.GRANT.value}' THEN 1 ELSE 0 END) AS grant_rows, "
            f"SUM(CASE WHEN kind <> '{LedgerKind.GRANT.value}' AND amount > 0 THEN 1 ELSE 0 END)"
            f' AS positive_draws FROM "{ledger_table}" GROUP BY grant_id'
        )
    }
    for grant_id, grant in grants.items():
        team = _id(grant["team_id"])
        amount, remaining = _int(grant["amount"]), _int(grant["remaining"])
        ledger = sums.get(grant_id, {})
        total = _int(ledger.get("total"))
        subject = f"grant {grant_id}"
        if remaining != total:
            found.append(
                Discrepancy(
                    "grant-ledger", subject, _money(total), _money(remaining) + " remaining", team
                )
            )
        if remaining < 0:
            found.append(
                Discrepancy("negative-remaining", subject, ">= 0", _money(remaining), team)
            )
        if remaining > amount:
            found.append(
                Discrepancy(
                    "remaining-above-amount",
                    subject,
                    f"<= {_money(amount)}",
                    _money(remaining),
                    team,
                )
            )
        rows, granted = _int(ledger.get("grant_rows")), _int(ledger.get("granted"))
        if rows != 1 or granted != amount:
            found.append(
                Discrepancy(
                    "grant-entry",
                    subject,
                    f"one GRANT entry of {_money(amount)}",
                    f"{rows} totalling {_money(granted)}",
                    team,
                )
            )
        if _int(ledger.get("positive_draws")):
            found.append(
                Discrepancy(
                    "draw-sign",
                    subject,
                    "draws below zero",
                    f"{_int(ledger.get('positive_draws'))} positive",
                    team,
                )
            )
    for grant_id in sums.keys() - grants.keys():
        found.append(Discrepancy("orphan-ledger", f"grant {grant_id}", "a grant", "none"))
    # An entry's team must be its grant's team, or a team's money leaked into another's.
    # (PostgreSQL's composite key refuses such an entry; SQLite's single-column one does
    # not.) Joined on the team too, so on Citus the join stays on each team's shard: an
    # entry without a grant of its own team whose grant exists is another team's.
    for row in await _rows(
        f'SELECT l.id, l.team_id, l.grant_id FROM "{ledger_table}" l '
        f'LEFT JOIN "{grants_table}" g ON g.team_id = l.team_id AND g.id = l.grant_id '
        "WHERE g.id IS NULL"
    ):
        owner = grants.get(_id(row["grant_id"]))
        if owner is None:
            continue  # reported as an orphan ledger entry above
        found.append(
            Discrepancy(
                "ledger-team",
                f"ledger entry {row['id']}",
                f"team {_id(owner['team_id'])}",
                f"team {_id(row['team_id'])}",
                _id(row["team_id"]),
            )
        )
    return grants


async def _check_accounts(grants: dict[str, dict[str, Any]], found: list[Discrepancy]) -> int:
    """Cached balances vs live grants as of each account's last write; returns the team count."""
    by_team: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for grant in grants.values():
        if _int(grant["remaining"]) > 0:
            by_team[_id(grant["team_id"])].append(grant)
    accounts = await _rows(
        "SELECT team_id, free, promotional, prepaid, next_expiry_at, updated_at "
        f'FROM "{_table(CreditAccount)}"'
    )
    for account in accounts:
        team = _id(account["team_id"])
        as_of = _dt(account["updated_at"])
        # Live when the account was last written: the service drops a grant from the
        # cached sums at flush time once `expires_at <= now`; anything that expired
        # later is still counted until the next locked write sweeps it.
        live = [
            g
            for g in by_team.pop(team, [])
            if (expiry := _dt(g["expires_at"])) is None or as_of is None or expiry > as_of
        ]
        for kind, column in (
            (CreditKind.FREE, "free"),
            (CreditKind.PROMOTIONAL, "promotional"),
            (CreditKind.PREPAID, "prepaid"),
        ):
            expected = sum(_int(g["remaining"]) for g in live if g["kind"] == kind.value)
            cached = _int(account[column])
            if cached != expected:
                found.append(
                    Discrepancy(
                        "account-balance",
                        f"cached {column} balance",
                        _money(expected),
                        _money(cached),
                        team,
                    )
                )
            if cached < 0:
                found.append(
                    Discrepancy(
                        "negative-balance", f"cached {column} balance", ">= 0", _money(cached), team
                    )
                )
        expiries = [e for g in live if (e := _dt(g["expires_at"])) is not None]
        next_expiry = _dt(account["next_expiry_at"])
        # The sweeper finds teams by next_expiry_at: a later value would leave credits
        # spendable on screen after they expired.
        if expiries and (next_expiry is None or next_expiry > min(expiries)):
            found.append(
                Discrepancy(
                    "next-expiry",
                    "next_expiry_at",
                    f"<= {min(expiries).isoformat()}",
                    next_expiry.isoformat() if next_expiry else "null",
                    team,
                )
            )
    for team in by_team:
        found.append(Discrepancy("missing-account", "credit account", "a row", "none", team))
    return len(accounts)


async def _check_usage(grants: dict[str, dict[str, Any]], found: list[Discrepancy]) -> int:
    """Each record's parts add up and match its ledger draws; returns the record count."""
    usage_table, ledger_table = _table(UsageRecord), _table(LedgerEntry)
    records = await _rows(
        "SELECT id, team_id, amount, from_free, from_promotional, from_prepaid, invoiced "
        f'FROM "{usage_table}"'
    )
    draws: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CreditKind, 0))
    for row in await _rows(
        f'SELECT usage_id, grant_id, SUM(amount) AS total FROM "{ledger_table}" '
        f"WHERE kind = '{LedgerKind.USAGE.value}' GROUP BY usage_id, grant_id"
    ):
        grant = grants.get(_id(row["grant_id"]))
        usage_id = _id(row["usage_id"]) if row["usage_id"] is not None else "null"
        if grant is None:
            continue  # reported as an orphan ledger entry already
        draws[usage_id][CreditKind(grant["kind"])] -= _int(row["total"])
    for record in records:
        usage_id, team = _id(record["id"]), _id(record["team_id"])
        amount = _int(record["amount"])
        parts = {
            CreditKind.FREE: _int(record["from_free"]),
            CreditKind.PROMOTIONAL: _int(record["from_promotional"]),
            CreditKind.PREPAID: _int(record["from_prepaid"]),
        }
        invoiced = _int(record["invoiced"])
        subject = f"usage {usage_id}"
        if sum(parts.values()) + invoiced != amount:
            found.append(
                Discrepancy(
                    "usage-parts",
                    subject,
                    _money(amount),
                    f"{_money(sum(parts.values()) + invoiced)} (free+promotional+prepaid+invoiced)",
                    team,
                )
            )
        if amount <= 0 or invoiced < 0 or any(v < 0 for v in parts.values()):
            found.append(
                Discrepancy(
                    "usage-sign",
                    subject,
                    "amount > 0, parts >= 0",
                    f"amount {_money(amount)}",
                    team,
                )
            )
        drawn = draws.pop(usage_id, dict.fromkeys(CreditKind, 0))
        for kind, part in parts.items():
            if drawn[kind] != part:
                found.append(
                    Discrepancy(
                        "usage-draws",
                        f"{subject} {kind.value.lower()} part",
                        f"{_money(part)} (the record)",
                        f"{_money(drawn[kind])} drawn in the ledger",
                        team,
                    )
                )
    for usage_id in draws:
        found.append(
            Discrepancy("orphan-usage-draw", f"usage {usage_id}", "a usage record", "none")
        )
    return len(records)


async def _invoiced_usage() -> dict[tuple[str, str], int]:
    rows = await _rows(
        f'SELECT team_id, period, SUM(invoiced) AS total FROM "{_table(UsageRecord)}" '
        "GROUP BY team_id, period"
    )
    return {(_id(r["team_id"]), str(r["period"])): _int(r["total"]) for r in rows}


async def _check_invoiced_periods(
    usage: dict[tuple[str, str], int], found: list[Discrepancy]
) -> int:
    rows = await _rows(f'SELECT team_id, period, amount FROM "{_table(InvoicedPeriod)}"')
    seen = set()
    for row in rows:
        key = (_id(row["team_id"]), str(row["period"]))
        seen.add(key)
        expected, actual = usage.get(key, 0), _int(row["amount"])
        if expected != actual:
            found.append(
                Discrepancy(
                    "invoiced-period",
                    f"invoiced amount of {key[1]}",
                    f"{_money(expected)} (sum of usage)",
                    _money(actual),
                    key[0],
                )
            )
    for key, total in usage.items():
        if total and key not in seen:
            found.append(
                Discrepancy(
                    "invoiced-period",
                    f"invoiced amount of {key[1]}",
                    f"{_money(total)} (sum of usage)",
                    "no row",
                    key[0],
                )
            )
    return len(rows)


async def _check_monthly_invoices(
    usage: dict[tuple[str, str], int], found: list[Discrepancy]
) -> int:
    """A MONTHLY_USAGE invoice bills its team-period's invoiced usage: the exact units on
    its usage lines sum to it, each line rounded once (half up) to cents, the lines adding
    up to the subtotal and subtotal plus tax to the total."""
    invoices_table = _table(Invoice)
    lines_table = _table(InvoiceLine)
    invoices = await _rows(
        "SELECT id, team_id, period, status, subtotal_cents, tax_cents, total_cents "
        f"FROM \"{invoices_table}\" WHERE kind = 'MONTHLY_USAGE'"
    )
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await _rows(
        "SELECT l.invoice_id, l.amount_cents, l.exact_units "
        f'FROM "{lines_table}" l JOIN "{invoices_table}" i '
        "ON i.team_id = l.team_id AND i.id = l.invoice_id "
        "WHERE i.kind = 'MONTHLY_USAGE'"
    ):
        lines[_id(row["invoice_id"])].append(row)
    for invoice in invoices:
        invoice_id, team = _id(invoice["id"]), _id(invoice["team_id"])
        period = str(invoice["period"])
        subject = f"monthly invoice {invoice_id} ({period})"
        invoiced = usage.get((team, period), 0)
        rows = lines.get(invoice_id, [])
        usage_rows = [r for r in rows if r["exact_units"] is not None]
        units = sum(_int(r["exact_units"]) for r in usage_rows)
        if units != invoiced:
            found.append(
                Discrepancy(
                    "invoice-usage",
                    subject,
                    f"{_money(invoiced)} (invoiced usage)",
                    f"{_money(units)} on its usage lines",
                    team,
                )
            )
        for row in usage_rows:
            cents = units_to_cents_half_up(_int(row["exact_units"]))
            if _int(row["amount_cents"]) != cents:
                found.append(
                    Discrepancy(
                        "invoice-rounding",
                        f"{subject} line of {_money(_int(row['exact_units']))}",
                        f"{cents} cents",
                        f"{_int(row['amount_cents'])} cents",
                        team,
                    )
                )
        subtotal, total = _int(invoice["subtotal_cents"]), _int(invoice["total_cents"])
        line_cents = sum(_int(r["amount_cents"]) for r in rows)
        if line_cents != subtotal:
            found.append(
                Discrepancy(
                    "invoice-lines",
                    subject,
                    f"{subtotal} cents (subtotal)",
                    f"{line_cents} cents in its lines",
                    team,
                )
            )
        tax = _int(invoice["tax_cents"])
        if subtotal + tax != total:
            found.append(
                Discrepancy(
                    "invoice-total", subject, f"{subtotal + tax} cents", f"{total} cents", team
                )
            )
    return len(invoices)


async def _check_holds(found: list[Discrepancy]) -> int:
    """Each account's `held` against its HELD holds, and each capture against its usage
    record; returns the hold count. Expired holds not yet swept are still HELD in both."""
    holds_table, usage_table = _table(Hold), _table(UsageRecord)
    held = HoldStatus.HELD.value
    sums = {
        _id(row["team_id"]): _int(row["total"])
        for row in await _rows(
            f'SELECT team_id, SUM(amount) AS total FROM "{holds_table}" '
            f"WHERE status = '{held}' GROUP BY team_id"
        )
    }
    for account in await _rows(f'SELECT team_id, held FROM "{_table(CreditAccount)}"'):
        team = _id(account["team_id"])
        expected, cached = sums.pop(team, 0), _int(account["held"])
        if cached != expected:
            found.append(
                Discrepancy(
                    "account-held",
                    "cached held amount",
                    f"{_money(expected)} (sum of HELD holds)",
                    _money(cached),
                    team,
                )
            )
    for team, total in sums.items():
        found.append(Discrepancy("account-held", "credit account", _money(total), "none", team))
    holds = await _rows(
        "SELECT h.id, h.team_id, h.amount, h.captured, h.status, "
        "u.id AS usage_id, u.team_id AS usage_team, u.amount AS usage_amount, "
        f'u.idempotency_key FROM "{holds_table}" h '
        f'LEFT JOIN "{usage_table}" u ON u.team_id = h.team_id AND u.id = h.usage_id'
    )
    for hold in holds:
        team, subject = _id(hold["team_id"]), f"hold {_id(hold['id'])}"
        amount, captured = _int(hold["amount"]), _int(hold["captured"])
        if amount <= 0 or not 0 <= captured <= amount:
            found.append(
                Discrepancy(
                    "hold-amounts",
                    subject,
                    "0 < amount, 0 <= captured <= amount",
                    f"amount {_money(amount)}, captured {_money(captured)}",
                    team,
                )
            )
        if hold["status"] != HoldStatus.CAPTURED.value:
            if captured or hold["usage_id"] is not None:
                found.append(Discrepancy("hold-capture", subject, "no capture", "a capture", team))
            continue
        usage = (
            None
            if hold["usage_id"] is None
            else (_id(hold["usage_team"]), _int(hold["usage_amount"]), hold["idempotency_key"])
        )
        expected_usage = (team, captured, f"hold:{_id(hold['id'])}")
        if usage != expected_usage:
            found.append(
                Discrepancy(
                    "hold-capture",
                    subject,
                    f"a usage record of {_money(captured)} keyed hold:<id>",
                    "none" if usage is None else f"{_money(usage[1])} keyed {usage[2]}",
                    team,
                )
            )
    return len(holds)


async def audit_with_summary() -> tuple[list[Discrepancy], AuditSummary]:
    """Every discrepancy found, and what was looked at."""
    found: list[Discrepancy] = []
    grants = await _check_grants(found)
    teams = await _check_accounts(grants, found)
    records = await _check_usage(grants, found)
    usage = await _invoiced_usage()
    periods = await _check_invoiced_periods(usage, found)
    invoices = await _check_monthly_invoices(usage, found)
    holds = await _check_holds(found)
    (entries,) = await _rows(f'SELECT COUNT(*) AS n FROM "{_table(LedgerEntry)}"')
    summary = AuditSummary(
        teams=teams,
        grants=len(grants),
        ledger_entries=_int(entries["n"]),
        usage_records=records,
        invoiced_periods=periods,
        monthly_invoices=invoices,
        holds=holds,
    )
    return found, summary


async def audit() -> list[Discrepancy]:
    """Every discrepancy in the open database; empty when the ledger is consistent."""
    found, _summary = await audit_with_summary()
    return found


def report(found: Iterable[Discrepancy], summary: AuditSummary) -> str:
    """The text `creditline audit` prints."""
    found = list(found)
    head = (
        f"audited {summary.teams} teams, {summary.grants} grants, "
        f"{summary.ledger_entries} ledger entries, {summary.usage_records} usage records, "
        f"{summary.invoiced_periods} invoiced periods, "
        f"{summary.monthly_invoices} monthly invoices, {summary.holds} holds"
    )
    if not found:
        return f"{head}\naudit clean: no discrepancy"
    lines = [head, f"{len(found)} discrepancies:"]
    lines.extend(f"  {d}" for d in found)
    return "\n".join(lines)
