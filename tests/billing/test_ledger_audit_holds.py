"""The ledger audit's checks of holds: each account's `held`, each capture's record."""

from __future__ import annotations

import uuid

from app.billing.ledger_audit import audit
from app.credits import holds
from app.credits.models import CreditAccount, Hold, UsageRecord
from tests.support.api import Actor
from tests.support.credits import give, units
from tests.support.holds import hold


async def test_finds_an_account_whose_held_disagrees_with_its_holds(admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    await give(team_id, "20.00")
    await hold(team_id, "5.00")
    assert await audit() == []
    await CreditAccount.filter(team_id=team_id).update(held=units("4.00"))
    (found,) = await audit()
    assert (found.check, found.team_id) == ("account-held", admin.team_id)
    assert (found.expected, found.actual) == ("5.00 (sum of HELD holds)", "4.00")


async def test_finds_a_capture_without_its_usage_record(admin: Actor) -> None:
    team_id = uuid.UUID(admin.team_id)
    await give(team_id, "20.00")
    made = await hold(team_id, "5.00")
    await holds.capture_hold(made.id, units("2.00"))
    assert await audit() == []
    await Hold.filter(id=made.id).update(captured=units("3.00"))
    found = await audit()
    assert [(d.check, d.subject) for d in found] == [("hold-capture", f"hold {made.id}")]
    await Hold.filter(id=made.id).update(captured=units("2.00"), usage_id=None)
    assert [d.check for d in await audit()] == ["hold-capture"]
    assert await UsageRecord.filter(team_id=team_id).count() == 1
