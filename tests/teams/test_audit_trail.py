"""The audit trail: who changed the limit, members and roles, when, from what to what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.credits import service as credits
from app.kit import clock
from app.teams.audit.models import AuditEvent
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import LIMIT, set_limit

LOG = """query($t: ID!, $n: Int, $after: String) { team(id: $t) { auditLog(first: $n, after: $after) {
  edges { cursor node { id action actor oldValue newValue createdAt } }
  pageInfo { hasNextPage endCursor } } } }"""
ADD = """mutation($t: ID!, $e: String!, $r: Role!) { addTeamMember(input: {teamId: $t, email: $e, role: $r}) {
  member { email } errors { code } } }"""
ROLE = """mutation($t: ID!, $e: String!, $r: Role!) { setTeamMemberRole(input: {teamId: $t, email: $e, role: $r}) {
  member { role } errors { code } } }"""
REMOVE = """mutation($t: ID!, $e: String!) { removeTeamMember(input: {teamId: $t, email: $e}) { errors { code } } }"""


async def _log(api: Api, actor: Actor, team_id: str, **kw: Any) -> dict[str, Any]:
    data = await api.ok(LOG, {"t": team_id, **kw}, actor.token)
    return data["team"]["auditLog"]  # type: ignore[no-any-return]


async def test_members_roles_and_the_limit_are_recorded_newest_first(
    api: Api, admin: Actor
) -> None:
    clock.freeze(datetime(2026, 4, 1, 9, tzinfo=UTC))
    bob = await sign_up(api, "bob@example.com")
    t = admin.team_id
    await join(api, admin, bob)
    await api.ok(ADD, {"t": t, "e": "later@example.com", "r": "ADMIN"}, admin.token)
    await api.ok(ROLE, {"t": t, "e": bob.email, "r": "ADMIN"}, admin.token)
    await api.ok(ROLE, {"t": t, "e": bob.email, "r": "ADMIN"}, admin.token)  # no change
    await api.ok(REMOVE, {"t": t, "e": "later@example.com"}, admin.token)
    await set_limit(t, "50.00")
    result = await api.ok(LIMIT, {"t": t, "l": "0"}, bob.token)
    assert result["setInvoicedSpendingLimit"]["errors"] == []
    await credits.set_invoiced_limit(uuid.UUID(t), 0)  # no change: not recorded

    log = await _log(api, admin, t)
    entries = [e["node"] for e in log["edges"]]
    assert [(e["action"], e["actor"], e["oldValue"], e["newValue"]) for e in entries] == [
        ("INVOICED_LIMIT_CHANGED", "bob@example.com", {"limit": "50.00"}, {"limit": "0.00"}),
        (
            "MEMBER_REMOVED",
            "admin@example.com",
            {"email": "later@example.com", "role": "ADMIN", "pending": True},
            None,
        ),
        (
            "MEMBER_ROLE_CHANGED",
            "admin@example.com",
            {"email": "bob@example.com", "role": "MEMBER", "pending": False},
            {"email": "bob@example.com", "role": "ADMIN", "pending": False},
        ),
        (
            "MEMBER_ADDED",
            "admin@example.com",
            None,
            {"email": "later@example.com", "role": "ADMIN", "pending": True},
        ),
        (
            "INVITATION_ACCEPTED",
            "bob@example.com",
            {"email": "bob@example.com", "role": "MEMBER", "pending": True},
            {"email": "bob@example.com", "role": "MEMBER", "pending": False},
        ),
        (
            "MEMBER_ADDED",
            "admin@example.com",
            None,
            {"email": "bob@example.com", "role": "MEMBER", "pending": True},
        ),
    ]
    assert {e["createdAt"] for e in entries} == {"2026-04-01T09:00:00+00:00"}
    assert log["pageInfo"] == {"hasNextPage": False, "endCursor": log["edges"][-1]["cursor"]}


async def test_pages_follow_the_cursor(api: Api, admin: Actor) -> None:
    for i in range(5):
        await api.ok(
            ADD, {"t": admin.team_id, "e": f"p{i}@example.com", "r": "MEMBER"}, admin.token
        )
    first = await _log(api, admin, admin.team_id, n=2)
    assert first["pageInfo"]["hasNextPage"] is True
    second = await _log(api, admin, admin.team_id, n=2, after=first["pageInfo"]["endCursor"])
    third = await _log(api, admin, admin.team_id, n=2, after=second["pageInfo"]["endCursor"])
    emails = [
        e["node"]["newValue"]["email"] for page in (first, second, third) for e in page["edges"]
    ]
    assert emails == [f"p{i}@example.com" for i in (4, 3, 2, 1, 0)]
    assert third["pageInfo"]["hasNextPage"] is False
    for bad in ("nonsense", "YXVkaXR8eA"):  # base64 of "audit|x"
        code = await api.error_code(LOG, {"t": admin.team_id, "after": bad}, admin.token)
        assert code == "INVALID_INPUT"


async def test_only_admins_and_operators_read_it(api: Api, admin: Actor, operator: Actor) -> None:
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    assert await api.error_code(LOG, {"t": admin.team_id}, member.token) == "FORBIDDEN"
    stranger = await sign_up(api, "stranger@example.com")
    assert await api.error_code(LOG, {"t": admin.team_id}, stranger.token) == "NOT_FOUND"
    # The invitation and its acceptance.
    assert len((await _log(api, operator, admin.team_id))["edges"]) == 2


async def test_a_refused_change_records_nothing(api: Api, admin: Actor) -> None:
    # The last admin cannot leave: the change and its audit event roll back together.
    result = await api.ok(REMOVE, {"t": admin.team_id, "e": admin.email}, admin.token)
    assert result["removeTeamMember"]["errors"] == [{"code": "INVALID_INPUT"}]
    result = await api.ok(ROLE, {"t": admin.team_id, "e": admin.email, "r": "MEMBER"}, admin.token)
    assert result["setTeamMemberRole"]["errors"] == [{"code": "INVALID_INPUT"}]
    assert await AuditEvent.all().count() == 0


async def test_payment_methods_auto_top_up_and_billing_address_are_recorded(
    api: Api, admin: Actor
) -> None:
    from tests.support.billing import configure
    from tests.support.invoices import BERLIN, save_address
    from tests.support.payments import REMOVE_PM, SET_DEFAULT, add_card

    visa = await add_card(api, admin)
    master = await add_card(api, admin)
    await api.ok(SET_DEFAULT, {"t": admin.team_id, "id": master["id"]}, admin.token)
    await api.ok(REMOVE_PM, {"t": admin.team_id, "id": visa["id"]}, admin.token)
    assert (await configure(api, admin, threshold="5.00"))["errors"] == []
    await configure(api, admin, threshold="5.00")  # the same again: nothing changed
    assert (await save_address(api, admin, **BERLIN))["errors"] == []
    assert (await save_address(api, admin, **{**BERLIN, "city": "Potsdam"}))["errors"] == []

    log = await _log(api, admin, admin.team_id, n=100)
    entries = [e["node"] for e in reversed(log["edges"])]
    assert [e["action"] for e in entries] == [
        "PAYMENT_METHOD_ADDED",
        "PAYMENT_METHOD_ADDED",
        "DEFAULT_PAYMENT_METHOD_CHANGED",
        "PAYMENT_METHOD_REMOVED",
        "AUTO_TOP_UP_CONFIGURED",
        "BILLING_ADDRESS_UPDATED",
        "BILLING_ADDRESS_UPDATED",
    ]
    assert {e["actor"] for e in entries} == {admin.email}
    added, _, default, removed, top_up, address, moved = entries
    assert added["newValue"] == {
        "id": visa["id"], "type": "CARD", "brand": "visa", "last4": "4242", "isDefault": True,
    }  # fmt: skip
    assert default["oldValue"]["id"] == visa["id"]
    assert default["newValue"]["id"] == master["id"]
    assert removed["oldValue"]["id"] == visa["id"]
    assert removed["newValue"] is None
    assert top_up["oldValue"]["enabled"] is False
    assert top_up["newValue"] == {
        "enabled": True, "threshold": "5.00", "amount": "25.00", "monthlyLimit": "100.00",
        "pausedReason": None,
    }  # fmt: skip
    assert address["oldValue"] is None
    assert address["newValue"]["city"] == "Berlin"
    assert (moved["oldValue"]["city"], moved["newValue"]["city"]) == ("Berlin", "Potsdam")
