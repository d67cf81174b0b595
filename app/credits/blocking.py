"""`team.unblocked`: a blocked team that can be served again, found by the notifier's pass.

A team becomes blocked on the usage path (`programs.mark_blocked`, told once per
transition). Credits added (a grant, a purchase, a promo code, an auto top-up) unblock it
in their own transaction (`service.flush_accounts`); the other ways back (a raised limit,
a lifted suspension, a new month) are found here: the notifier re-checks the few blocked
teams on every pass (woken by any outbox write, and on a timer) and tells the transition
in the transaction that records it.
"""

from __future__ import annotations

import uuid

from app.credits import programs, rules, store
from app.credits.models import CreditAccount, InvoicedPeriod
from app.credits.service import lock_account
from app.events.commit import atomic
from app.kit import clock

MAX_PER_PASS = 500


async def servable_blocked_teams(limit: int = MAX_PER_PASS) -> list[uuid.UUID]:
    """Blocked teams that look servable again, read without locks (two queries).

    The cached balances only ever overstate credits (an expiry not yet written), so a team
    they show without credits or headroom has none: no false negatives. A candidate is
    confirmed under its lock by `unblock_if_served`.
    """
    accounts = await CreditAccount.filter(blocked=True).limit(limit)
    if not accounts:
        return []
    period = clock.period_of(clock.now())
    used = dict(
        await InvoicedPeriod.filter(
            team_id__in=[a.team_id for a in accounts], period=period
        ).values_list("team_id", "amount")
    )
    found = []
    for account in accounts:
        limit_units = int(account.invoiced_limit)
        headroom = rules.invoiced_headroom(
            limit_units, int(used.get(account.team_id, 0)), account.invoicing_suspended
        )
        total = int(account.free + account.promotional + account.prepaid)
        if rules.billing_status(total, limit_units, headroom) is rules.BillingStatus.ACTIVE:
            found.append(account.team_id)
    return found


async def unblock_if_served(team_id: uuid.UUID) -> bool:
    """Records and tells `team.unblocked` when the team's status is ACTIVE again."""
    async with atomic() as tx:
        locked = await lock_account(team_id, tx.conn)
        account = locked.account
        if not account.blocked:
            return False
        period = clock.period_of(clock.now())
        used = await store.invoiced_amount(tx.conn, team_id, period)
        limit = int(account.invoiced_limit)
        headroom = rules.invoiced_headroom(limit, used, account.invoicing_suspended)
        status = rules.billing_status(locked.available, limit, headroom)
        if status is not rules.BillingStatus.ACTIVE:
            return False
        await CreditAccount.filter(team_id=team_id).using_db(tx.conn).update(blocked=False)
        await programs.mark_unblocked(tx, account)
        return True
