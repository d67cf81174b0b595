"""GraphQL documents and paging helpers for usage history (series, records, statement)."""

from __future__ import annotations

from typing import Any

from tests.support.api import Actor, Api

SERIES = """query($t: ID!, $f: DateTime!, $to: DateTime!, $g: Granularity!, $by: String) {
  team(id: $t) { usage(from: $f, to: $to, granularity: $g, groupBy: $by) {
    total events fromCredits invoiced
    buckets { start group amount events fromCredits invoiced } } } }"""
RECORDS = """query($t: ID!, $first: Int, $after: String, $f: DateTime, $to: DateTime) {
  team(id: $t) { usageRecords(first: $first, after: $after, from: $f, to: $to) {
    edges { cursor node { id idempotencyKey amount fromFree fromPromotional fromPrepaid
      invoiced description occurredAt dimensions } }
    pageInfo { hasNextPage endCursor } } } }"""
LEDGER = """query($t: ID!, $first: Int, $after: String, $f: DateTime, $to: DateTime) {
  team(id: $t) { ledger(first: $first, after: $after, from: $f, to: $to) {
    edges { cursor node { id kind amount balanceAfter description createdAt } }
    pageInfo { hasNextPage endCursor } } } }"""
EXPORT = """query($t: ID!, $k: ExportKind!, $f: DateTime!, $to: DateTime!) {
  team(id: $t) { exportUrl(kind: $k, from: $f, to: $to) } }"""
RUNWAY = """query($t: ID!) { team(id: $t) { credits { total available
  runway { dailyBurn daysLeft exhaustsAt creditsDaysLeft creditsExhaustAt } } } }"""
RECORD = """mutation($i: RecordUsageInput!) { recordUsage(input: $i) {
  usage { id amount invoiced } errors { code field message } } }"""


async def record(
    api: Api,
    operator: Actor,
    team_id: str,
    amount: str,
    key: str,
    occurred_at: str | None = None,
    description: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """recordUsage as the operator; the usage, which must be accepted."""
    event: dict[str, Any] = {"teamId": team_id, "amount": amount, "idempotencyKey": key}
    if occurred_at is not None:
        event["occurredAt"] = occurred_at
    if description is not None:
        event["description"] = description
    if dimensions is not None:
        event["dimensions"] = dimensions
    data = await api.ok(RECORD, {"i": event}, operator.token)
    payload: dict[str, Any] = data["recordUsage"]
    assert payload["errors"] == [], payload
    usage: dict[str, Any] = payload["usage"]
    return usage


async def _pages(
    api: Api,
    actor: Actor,
    query: str,
    field: str,
    team_id: str,
    first: int,
    start: str | None,
    end: str | None,
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        variables = {"t": team_id, "first": first, "after": after, "f": start, "to": end}
        data = await api.ok(query, variables, actor.token)
        connection = data["team"][field]
        nodes += [edge["node"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes
        after = connection["pageInfo"]["endCursor"]


async def all_records(
    api: Api,
    actor: Actor,
    team_id: str,
    *,
    first: int = 100,
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """Every usage record in the range, newest first, read page by page."""
    return await _pages(api, actor, RECORDS, "usageRecords", team_id, first, start, end)


async def all_ledger(
    api: Api,
    actor: Actor,
    team_id: str,
    *,
    first: int = 100,
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """Every statement entry in the range, newest first, read page by page."""
    return await _pages(api, actor, LEDGER, "ledger", team_id, first, start, end)
