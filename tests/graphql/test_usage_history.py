"""Usage history through the API: series, records, the statement, runway, exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.kit import clock
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import grant
from tests.support.history import (
    EXPORT,
    LEDGER,
    RECORDS,
    SERIES,
    all_ledger,
    all_records,
    record,
)


@pytest.fixture(autouse=True)
def _march() -> Any:
    """Usage may be dated back to the previous month: these tests live in March 2026."""
    clock.freeze(datetime(2026, 3, 10, 12, tzinfo=UTC))
    yield
    clock.reset()


async def test_series_groups_by_dimension_and_description_with_edges_in_utc(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "1.00")
    await record(
        api, operator, admin.team_id, "0.30", "a", "2026-02-28T23:59:59Z", "chat", {"model": "m1"}
    )
    await record(
        api, operator, admin.team_id, "0.50", "b", "2026-03-01T00:00:00Z", "chat", {"model": "m2"}
    )
    # Past the credits: 0.20 of it is invoiced once a limit allows it.
    await record(api, operator, admin.team_id, "0.10", "c", "2026-03-01T00:30:00+01:00", None, None)
    variables = {"t": admin.team_id, "f": "2026-02-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    data = await api.ok(SERIES, {**variables, "g": "MONTH", "by": "model"}, admin.token)
    series = data["team"]["usage"]
    assert series["total"] == "0.90"
    assert series["events"] == 3
    buckets = [(b["start"], b["group"], b["amount"], b["events"]) for b in series["buckets"]]
    # 00:30+01:00 is 23:30 UTC on February 28th: February.
    assert buckets == [
        ("2026-02-01T00:00:00+00:00", "m1", "0.30", 1),
        ("2026-02-01T00:00:00+00:00", None, "0.10", 1),
        ("2026-03-01T00:00:00+00:00", "m2", "0.50", 1),
    ]
    data = await api.ok(SERIES, {**variables, "g": "DAY", "by": "description"}, admin.token)
    days = [(b["start"][:10], b["group"], b["amount"]) for b in data["team"]["usage"]["buckets"]]
    assert days == [
        ("2026-02-28", "chat", "0.30"),
        ("2026-02-28", None, "0.10"),
        ("2026-03-01", "chat", "0.50"),
    ]
    # Ungrouped: every bucket, empty ones too; a range not on hour edges reads the records.
    data = await api.ok(
        SERIES,
        {
            "t": admin.team_id,
            "f": "2026-02-28T23:30:00Z",
            "to": "2026-03-01T01:00:00Z",
            "g": "HOUR",
            "by": None,
        },
        admin.token,
    )
    hours = [
        (b["start"], b["amount"], b["fromCredits"], b["invoiced"])
        for b in data["team"]["usage"]["buckets"]
    ]
    assert hours == [
        ("2026-02-28T23:00:00+00:00", "0.40", "0.40", "0.00"),
        ("2026-03-01T00:00:00+00:00", "0.50", "0.50", "0.00"),
    ]


async def test_series_inputs_are_checked(api: Api, client: httpx.AsyncClient, admin: Actor) -> None:
    async def code(query: str, variables: dict[str, Any]) -> str:
        # json.dumps escapes lone surrogates (\\ud800), as a client's JSON would.
        response = await client.post(
            "/graphql",
            content=json.dumps({"query": query, "variables": variables}),
            headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
        )
        body = response.json()
        assert body.get("errors"), body
        return str(body["errors"][0]["extensions"]["code"])

    def ask(**extra: Any) -> dict[str, Any]:
        return {
            "t": admin.team_id,
            "f": "2026-01-02T00:00:00Z",
            "to": "2026-01-03T00:00:00Z",
            "g": "DAY",
            "by": None,
            **extra,
        }

    bad = [
        ask(f="2026-01-04T00:00:00Z"),
        ask(f="2020-01-01T00:00:00Z", g="HOUR"),
        ask(by="model name"),
        ask(by="\x00"),
        ask(by="\ud800"),
        ask(by="x" * 65),
    ]
    for variables in bad:
        assert await code(SERIES, variables) == "INVALID_INPUT", variables
    for cursor in ["garbage", "\x00", "\ud800", "x" * 5000]:
        for query in (RECORDS, LEDGER):
            assert await code(query, {"t": admin.team_id, "after": cursor}) == "INVALID_INPUT"
    # A whole month of hours is fine; a record page beyond 100 is not.
    assert (await api.ok(SERIES, ask(g="HOUR", f="2025-12-01T00:00:00Z"), admin.token))["team"]
    assert await code(RECORDS, {"t": admin.team_id, "first": 101}) == "INVALID_INPUT"


async def test_records_page_newest_first_and_members_read_them(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "5.00")
    for n in range(7):
        await record(
            api,
            operator,
            admin.team_id,
            "0.01",
            f"k{n}",
            f"2026-03-0{n + 1}T10:00:00Z",
            None,
            {"n": str(n)},
        )
    member = await sign_up(api)
    await join(api, admin, member)
    keys = [r["idempotencyKey"] for r in await all_records(api, member, admin.team_id, first=3)]
    assert keys == [f"k{n}" for n in reversed(range(7))]
    window = await all_records(
        api,
        member,
        admin.team_id,
        first=2,
        start="2026-03-02T10:00:00Z",
        end="2026-03-05T10:00:00Z",
    )
    assert [r["idempotencyKey"] for r in window] == ["k3", "k2", "k1"]
    assert window[0]["dimensions"] == {"n": "3"}


async def test_exports_equal_the_api_and_links_are_signed(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await grant(api, operator, admin.team_id, "2.00", description="=HYPERLINK(1)")
    for n in range(5):
        await record(
            api,
            operator,
            admin.team_id,
            "0.10",
            f"@k{n}",
            f"2026-03-0{n + 1}T00:00:00Z",
            "-cmd",
            {"m": "+x"},
        )
    span = {"f": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
    data = await api.ok(EXPORT, {"t": admin.team_id, "k": "USAGE", **span}, admin.token)
    url = urlsplit(data["team"]["exportUrl"])
    response = await client.get(f"{url.path}?{url.query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    api_rows = await all_records(api, admin, admin.team_id, first=2)
    assert [r["id"] for r in rows] == [r["id"] for r in api_rows]
    assert [Decimal(r["amount"]) for r in rows] == [Decimal(r["amount"]) for r in api_rows]
    assert {r["idempotency_key"] for r in rows} == {f"'@k{n}" for n in range(5)}
    assert {r["description"] for r in rows} == {"'-cmd"}
    # The ledger's CSV: the same entries, kinds and balances as the API's statement.
    data = await api.ok(
        EXPORT,
        {
            "t": admin.team_id,
            "k": "LEDGER",
            "f": "2025-01-01T00:00:00Z",
            "to": "2027-01-01T00:00:00Z",
        },
        admin.token,
    )
    url = urlsplit(data["team"]["exportUrl"])
    response = await client.get(f"{url.path}?{url.query}")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    entries = await all_ledger(api, admin, admin.team_id, first=2)
    assert [
        (r["id"], r["kind"], Decimal(r["amount"]), Decimal(r["balance_after"])) for r in rows
    ] == [(e["id"], e["kind"], Decimal(e["amount"]), Decimal(e["balanceAfter"])) for e in entries]
    assert rows[-1]["description"] == "'=HYPERLINK(1)"
    # Tampered or expired links are refused.
    tampered = url.query.replace("from=", "from=1")
    assert (await client.get(f"{url.path}?{tampered}")).status_code == 403
    clock.advance(timedelta(seconds=3601))
    assert (await client.get(f"{url.path}?{url.query}")).status_code == 403
