"""GraphQL operations of credits, usage and auto top-up that tests of several domains share."""

from __future__ import annotations

from typing import Any

from tests.support.api import Actor, Api

GRANT = """mutation($t: ID!, $a: Decimal!, $k: CreditKind!, $d: String, $x: DateTime) {
  grantCredits(input: {teamId: $t, amount: $a, kind: $k, description: $d, expiresAt: $x}) {
    grant { id kind amount remaining description expiresAt } errors { code field message } } }"""
USAGE = """mutation($t: ID!, $a: Decimal!, $key: String!, $d: String, $at: DateTime) {
  recordUsage(input: {teamId: $t, amount: $a, idempotencyKey: $key, description: $d, occurredAt: $at}) {
    usage { id idempotencyKey amount accepted fromFree fromPromotional fromPrepaid invoiced description occurredAt }
    credits { total }
    errors { code field message } } }"""
# recordUsage when only its error codes matter (the change is what the test watches).
RECORD_USAGE = """mutation($t: ID!, $a: Decimal!, $k: String!) {
  recordUsage(input: {teamId: $t, amount: $a, idempotencyKey: $k}) { errors { code } } }"""
CREDITS = """query($t: ID!) { team(id: $t) { credits {
  total free promotional prepaid invoicedSpendingLimit invoicedThisMonth invoicedRemaining status updatedAt
  grants { id kind amount remaining expiresAt description } } } }"""
LIMIT = """mutation($t: ID!, $l: Decimal!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: $l}) {
  credits { invoicedSpendingLimit invoicedRemaining status } errors { code field message } } }"""
CONFIGURE = """mutation($t: ID!, $e: Boolean!, $th: Decimal!, $a: Decimal!, $m: Decimal!) {
  configureAutoTopUp(input: {teamId: $t, enabled: $e, threshold: $th, amount: $a,
      monthlyLimit: $m}) {
    autoTopUp { enabled threshold amount monthlyLimit pausedReason pending }
    errors { code field message } } }"""


async def grant(
    api: Api,
    operator: Actor,
    team_id: str,
    amount: str,
    kind: str = "FREE",
    *,
    description: str | None = None,
    expires_at: str | None = None,
) -> dict[str, Any]:
    data = await api.ok(
        GRANT,
        {"t": team_id, "a": amount, "k": kind, "d": description, "x": expires_at},
        operator.token,
    )
    payload: dict[str, Any] = data["grantCredits"]
    assert payload["errors"] == [], payload
    return payload["grant"]  # type: ignore[no-any-return]


async def use(
    api: Api,
    operator: Actor,
    team_id: str,
    amount: str,
    key: str,
    *,
    description: str | None = None,
    occurred_at: str | None = None,
) -> dict[str, Any]:
    data = await api.ok(
        USAGE,
        {"t": team_id, "a": amount, "key": key, "d": description, "at": occurred_at},
        operator.token,
    )
    return data["recordUsage"]  # type: ignore[no-any-return]


async def credits(api: Api, actor: Actor, team_id: str | None = None) -> dict[str, Any]:
    data = await api.ok(CREDITS, {"t": team_id or actor.team_id}, actor.token)
    return data["team"]["credits"]  # type: ignore[no-any-return]


async def configure(
    api: Api,
    actor: Actor,
    *,
    enabled: bool = True,
    threshold: str = "10.00",
    amount: str = "25.00",
    monthly: str = "100.00",
) -> dict[str, Any]:
    """configureAutoTopUp as the team's admin; the payload."""
    variables = {"t": actor.team_id, "e": enabled, "th": threshold, "a": amount, "m": monthly}
    data = await api.ok(CONFIGURE, variables, actor.token)
    payload: dict[str, Any] = data["configureAutoTopUp"]
    return payload


async def set_limit(team_id: str, limit: str) -> None:
    """Sets the invoiced limit directly: setup for tests about usage, not about the limit rule
    (raising it through the API needs a payment method on file)."""
    import uuid

    from app.credits.models import CreditAccount
    from app.kit.money import parse

    await CreditAccount.filter(team_id=uuid.UUID(team_id)).update(
        invoiced_limit=parse(limit, allow_zero=True)
    )
