"""The Usage page and the Statement view against the live API: numbers, grouping, CSV, 390 px.

Usage is seeded the way the metering gateway sends it (recordUsage with dimensions, an
operator token), then every number the page shows is compared with what the API answers
for the same range: the page adds nothing of its own.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from playwright.async_api import Page, Route, expect

from tests.browser.conftest import Gql, unique_email
from tests.browser.harness import ROOT, Server
from tests.browser.helpers import add_card, open_page, screenshot, settled, sign_in

GRANT = """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
  credits { total } errors { code message } } }"""
LIMIT = """mutation($t: ID!, $l: Decimal!) { setInvoicedSpendingLimit(input: {teamId: $t, limit: $l}) {
  errors { code message } } }"""
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) {
  usage { id invoiced } errors { code message field } } }"""
RECORD_BATCH = """mutation($input: RecordUsageBatchInput!) { recordUsageBatch(input: $input) {
  results { usage { id } errors { code message } } errors { code message } } }"""
USAGE = """query($t: ID!, $from: DateTime!, $to: DateTime!, $by: String) { team(id: $t) {
  usage(from: $from, to: $to, granularity: DAY, groupBy: $by) {
    total events buckets { start group amount events fromCredits invoiced } } } }"""
RUNWAY = """query($t: ID!) { team(id: $t) { credits { total runway { dailyBurn daysLeft exhaustsAt } } } }"""
LEDGER = """query($t: ID!, $first: Int!, $from: DateTime, $to: DateTime) { team(id: $t) {
  ledger(first: $first, from: $from, to: $to) {
    edges { node { id kind amount balanceAfter description createdAt } } pageInfo { hasNextPage } }
  credits { total } } }"""

# (amount, description, model, days ago); recorded in this order.
EVENTS = [
    ("3.00", "chat", "grok-4", 3),
    ("2.50", "chat", "grok-3", 2),
    ("4.25", "embeddings", "grok-4", 2),
    ("1.125", "chat", "grok-4", 1),
    ("0.00001234", "embeddings", "grok-3", 1),
    ("12.00", "chat", "grok-4", 0),
]
GRANTED = Decimal("15.00")  # the last event goes past it: part from credits, part invoiced


def cents(value: Decimal) -> str:
    """How the page writes money rounded to cents: "$1,234.57", "-$0.01"."""
    rounded = value.copy_abs().quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 and rounded > 0 else ""
    return f"{sign}${rounded:,.2f}"


def exact(value: Decimal) -> str:
    """Every significant decimal, at least two: "$22.87501234", "$40.00"."""
    whole, _, fraction = f"{value.copy_abs():f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{'-' if value < 0 else ''}${int(whole):,}.{fraction}"


def thirty_days() -> tuple[str, str]:
    """The page's default range: the last 30 UTC days, today included, as [from, to)."""
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    return (tomorrow - timedelta(days=30)).isoformat(), tomorrow.isoformat()


async def seed_usage(
    page: Page, gql: Gql, team_id: str, admin_token: str, operator_token: str
) -> None:
    await add_card(page)  # an invoiced limit needs a payment method
    granted = await gql(
        GRANT,
        {"input": {"teamId": team_id, "amount": str(GRANTED), "description": "welcome"}},
        token=operator_token,
    )
    assert granted["grantCredits"]["errors"] == []
    limit = await gql(LIMIT, {"t": team_id, "l": "100"}, token=admin_token)
    assert limit["setInvoicedSpendingLimit"]["errors"] == []
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for index, (amount, description, model, days_ago) in enumerate(EVENTS):
        event: dict[str, Any] = {
            "teamId": team_id,
            "amount": amount,
            "idempotencyKey": f"usage-page-{team_id}-{index}",
            "description": description,
            "dimensions": {"model": model, "project": "search" if index % 2 else "chat-app"},
        }
        if days_ago:
            event["occurredAt"] = (today - timedelta(days=days_ago, hours=-12)).isoformat()
        recorded = await gql(RECORD, {"input": event}, token=operator_token)
        assert recorded["recordUsage"]["errors"] == [], recorded
    # A top-up after the spending, so the runway has credits to run down.
    topped = await gql(
        GRANT,
        {"input": {"teamId": team_id, "amount": "40.00", "description": "top-up"}},
        token=operator_token,
    )
    assert topped["grantCredits"]["errors"] == []


async def api_usage(gql: Gql, team_id: str, token: str, by: str | None) -> dict[str, Any]:
    start, end = thirty_days()
    data = await gql(USAGE, {"t": team_id, "from": start, "to": end, "by": by}, token=token)
    series: dict[str, Any] = data["team"]["usage"]
    return series


AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


async def accessibility_problems(page: Page) -> list[str]:
    """axe-core's WCAG A/AA findings inside <main> (the page's own content)."""
    await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document.querySelector("main"),
            { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] })).violations
            .map(v => ({ id: v.id, nodes: v.nodes.map(n => n.target.join(" ")) }))"""
    )
    return [f"{v['id']}: {v['nodes'][:3]}" for v in found]


async def no_sideways_scroll(page: Page) -> None:
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways at 390 px: {widths}"


async def test_usage_page_shows_the_api_numbers_grouped_and_as_csv(
    page: Page, gql: Gql, server: Server, operator_token: str
) -> None:
    email = unique_email("usage")
    await page.set_viewport_size({"width": 1280, "height": 900})
    team_id = await sign_in(page, email, "Usage Owner")
    admin_token = server.token(email)
    await seed_usage(page, gql, team_id, admin_token, operator_token)

    await open_page(page, "usage")
    result = page.get_by_test_id("usage-result")
    await expect(result).to_have_attribute("aria-busy", "false")

    # Totals: the page's tiles are the API's series, split between credits and invoiced.
    series = await api_usage(gql, team_id, admin_token, None)
    total = Decimal(series["total"])
    assert total == sum(Decimal(amount) for amount, *_ in EVENTS)
    from_credits = sum((Decimal(b["fromCredits"]) for b in series["buckets"]), Decimal(0))
    invoiced = sum((Decimal(b["invoiced"]) for b in series["buckets"]), Decimal(0))
    assert from_credits == GRANTED
    assert invoiced == total - GRANTED
    await expect(result).to_have_attribute("data-total", series["total"])
    await expect(page.get_by_test_id("usage-total")).to_have_text(cents(total))
    await expect(page.get_by_test_id("usage-from-credits")).to_have_text(cents(from_credits))
    await expect(page.get_by_test_id("usage-invoiced")).to_have_text(cents(invoiced))
    await expect(page.get_by_test_id("usage-events")).to_have_text(str(len(EVENTS)))
    # The exact value is one hover away.
    await expect(page.get_by_test_id("usage-total")).to_have_attribute("title", exact(total))

    # The table is the chart's text: one row per bucket with usage, the API's amounts.
    used = [bucket for bucket in series["buckets"] if bucket["events"]]
    assert len(used) == 4  # four days
    rows = page.get_by_test_id("usage-row")
    await expect(rows).to_have_count(len(used))
    for bucket in used:
        row = page.locator(f'[data-testid=usage-row][data-start="{bucket["start"]}"]')
        amount = (
            await row.get_by_test_id("usage-row-amount")
            .locator("[data-value]")
            .get_attribute("data-value")
        )
        assert amount is not None
        assert Decimal(amount) == Decimal(bucket["amount"])
    await expect(page.get_by_test_id("chart-legend-item")).to_have_count(1)
    await expect(page.locator("[data-testid=usage-chart] canvas")).to_have_count(1)
    # Pointing at today's bar (the last of 30) reads out its day and exact total.
    plot = page.locator("[data-testid=usage-chart] .u-over")
    box = await plot.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] * (1 - 0.5 / 30), box["y"] + box["height"] - 4)
    today = next(b for b in reversed(series["buckets"]) if b["events"])
    await expect(page.get_by_test_id("chart-readout")).to_contain_text(
        f"{exact(Decimal(today['amount']))} in total"
    )

    # The runway in words, from the API's burn rate.
    runway = (await gql(RUNWAY, {"t": team_id}, token=admin_token))["team"]["credits"]["runway"]
    sentence = page.get_by_test_id("runway-sentence")
    assert runway["daysLeft"] is not None, runway
    await expect(sentence).to_contain_text(f"At {cents(Decimal(runway['dailyBurn']))}/day")
    await expect(sentence).to_contain_text("credits last")
    await screenshot(page, "40-usage-1280")

    # Grouping by a dimension key changes the series: one bar colour and one row per model.
    await page.get_by_test_id("group-by").select_option("key:model")
    by_model = await api_usage(gql, team_id, admin_token, "model")
    expected: dict[str, Decimal] = {}
    for bucket in by_model["buckets"]:
        expected[bucket["group"]] = expected.get(bucket["group"], Decimal(0)) + Decimal(
            bucket["amount"]
        )
    assert set(expected) == {"grok-4", "grok-3"}
    groups = page.get_by_test_id("usage-group-row")
    await expect(groups).to_have_count(2)
    await expect(page.get_by_test_id("chart-legend-item")).to_have_count(2)
    for name, group_total in expected.items():
        cell = page.locator(f'[data-testid=usage-group-row][data-group="{name}"]')
        await expect(cell.get_by_test_id("usage-group-amount")).to_have_text(cents(group_total))
    await expect(page.get_by_test_id("usage-row")).to_have_count(
        len([bucket for bucket in by_model["buckets"] if bucket["events"]])
    )
    # Biggest first: grok-4 spent 20.375, grok-3 2.50001234.
    await expect(groups.first).to_have_attribute("data-group", "grok-4")
    await screenshot(page, "41-usage-by-model")
    assert await accessibility_problems(page) == []

    # By description, and by a key typed by hand (the same key as a dimension).
    await page.get_by_test_id("group-by").select_option("description")
    await expect(page.get_by_test_id("usage-group-row")).to_have_count(2)
    await expect(
        page.locator("[data-testid=usage-group-row][data-group=embeddings]")
    ).to_be_visible()
    await page.get_by_test_id("group-by").select_option("__other")
    await page.get_by_test_id("group-key").fill("bad key!")
    await page.get_by_test_id("group-key-apply").click()
    await expect(page.get_by_test_id("group-key-error")).to_be_visible()
    await page.get_by_test_id("group-key").fill("project")
    await page.get_by_test_id("group-key-apply").click()
    await expect(page.locator("[data-testid=usage-group-row][data-group=search]")).to_be_visible()
    # The choice is in the address: a reload shows the same grouping.
    await page.reload()
    await settled(page)
    await expect(page.locator("[data-testid=usage-group-row][data-group=search]")).to_be_visible()

    # CSV: a signed link from exportUrl, downloaded as a file with one row per event.
    async with page.expect_download() as waiting:
        await page.get_by_test_id("usage-export").click()
    download = await waiting.value
    assert download.suggested_filename.endswith(".csv")
    text = (await download.path()).read_text(encoding="utf-8-sig")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == len(EVENTS), text
    amount_column = next(name for name in records[0] if name.lower() == "amount")
    assert sum(Decimal(r[amount_column]) for r in records) == total

    # 390 px: the chart follows the width, the tables scroll in their own box, not the page.
    await page.set_viewport_size({"width": 390, "height": 844})
    await settled(page)
    canvas_width = await page.locator("[data-testid=usage-chart] canvas").evaluate(
        "canvas => canvas.getBoundingClientRect().width"
    )
    assert canvas_width <= 390
    await no_sideways_scroll(page)
    await screenshot(page, "42-usage-390")


async def test_usage_page_says_when_there_is_nothing_and_when_the_range_is_wrong(
    page: Page,
) -> None:
    await sign_in(page, unique_email("empty-usage"))

    # A failing answer is said in words, with Retry; the retry shows the real (empty) range.
    async def fail_series(route: Route) -> None:
        if "query Usage(" in (route.request.post_data or ""):
            await route.fulfill(
                json={
                    "errors": [
                        {"message": "The database is busy.", "extensions": {"code": "INTERNAL"}}
                    ]
                }
            )
        else:
            await route.continue_()

    await page.route("**/graphql", fail_series)
    await open_page(page, "usage")
    error = page.get_by_test_id("usage-card").get_by_test_id("error-state")
    # Said by its code, as on every page (docs/console.md): not the server's own words.
    await expect(error).to_contain_text("The server had a problem. Retry in a moment.")
    await expect(error).not_to_contain_text("The database is busy.")
    await page.unroute("**/graphql", fail_series)
    await error.get_by_role("button", name="Retry").click()
    await expect(page.get_by_test_id("usage-result").get_by_test_id("empty-state")).to_contain_text(
        "No usage in this range"
    )
    await expect(page.get_by_test_id("runway-sentence")).to_contain_text("no credits left")
    await page.get_by_test_id("range-preset").select_option("custom")
    await page.get_by_test_id("range-from").fill("2026-03-10")
    await page.get_by_test_id("range-to").fill("2026-03-01")
    await expect(page.get_by_test_id("range-error")).to_contain_text("on or after the start")
    await expect(page.get_by_test_id("usage-export")).to_be_disabled()
    await screenshot(page, "43-usage-empty")


async def test_statement_lists_the_ledger_reconciled_with_load_more_and_csv(
    page: Page, gql: Gql, server: Server, operator_token: str
) -> None:
    email = unique_email("statement")
    await page.set_viewport_size({"width": 1280, "height": 900})
    team_id = await sign_in(page, email)
    admin_token = server.token(email)
    await seed_usage(page, gql, team_id, admin_token, operator_token)
    # Enough small events for a second page (the page asks for 50 at a time).
    batch = [
        {
            "teamId": team_id,
            "amount": "0.01",
            "idempotencyKey": f"statement-{team_id}-{n}",
            "description": f"request {n}",
        }
        for n in range(55)
    ]
    answered = await gql(RECORD_BATCH, {"input": {"events": batch}}, token=operator_token)
    assert all(r["usage"] for r in answered["recordUsageBatch"]["results"]), answered

    await open_page(page, "statement")
    start, end = thirty_days()
    ledger = (
        await gql(LEDGER, {"t": team_id, "first": 100, "from": start, "to": end}, token=admin_token)
    )["team"]
    entries = [edge["node"] for edge in ledger["ledger"]["edges"]]
    assert not ledger["ledger"]["pageInfo"]["hasNextPage"]
    assert len(entries) > 50

    rows = page.get_by_test_id("statement-row")
    await expect(rows).to_have_count(50)
    await expect(page.get_by_test_id("statement-more")).to_be_visible()
    await screenshot(page, "44-statement-1280")
    assert await accessibility_problems(page) == []
    await page.get_by_test_id("statement-more").click()
    await expect(rows).to_have_count(len(entries))
    await expect(page.get_by_test_id("statement-more")).to_have_count(0)

    # Newest first, the API's entries in the API's order; each balance is the one before it
    # plus the entry's signed amount, and the newest balance is the team's total.
    shown = await rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.amount, r.dataset.balanceAfter, r.dataset.kind])"
    )
    assert shown == [[e["amount"], e["balanceAfter"], e["kind"]] for e in entries]
    for newer, older in itertools.pairwise(entries):
        assert Decimal(newer["balanceAfter"]) == Decimal(older["balanceAfter"]) + Decimal(
            newer["amount"]
        )
    assert Decimal(entries[0]["balanceAfter"]) == Decimal(ledger["credits"]["total"])
    await expect(page.get_by_test_id("statement-closing")).to_have_text(
        cents(Decimal(ledger["credits"]["total"]))
    )
    oldest = entries[-1]
    opening = Decimal(oldest["balanceAfter"]) - Decimal(oldest["amount"])
    await expect(page.get_by_test_id("statement-opening")).to_have_text(cents(opening))

    # Words for kinds, signed amounts with two decimals, the exact value in the title.
    tiny = page.locator('[data-testid=statement-row][data-amount="-0.00001234"]')
    await expect(tiny.get_by_test_id("statement-amount")).to_have_text("-$0.00")
    await expect(tiny.get_by_test_id("statement-amount")).to_have_attribute("title", "-$0.00001234")
    await expect(tiny).to_contain_text("Usage")
    top_up = page.locator("[data-testid=statement-row][data-kind=GRANT]").first
    await expect(top_up.get_by_test_id("statement-amount")).to_have_text("+$40.00")
    await expect(top_up).to_contain_text("Credit grant")

    async with page.expect_download() as waiting:
        await page.get_by_test_id("statement-export").click()
    download = await waiting.value
    text = (await download.path()).read_text(encoding="utf-8-sig")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == len(entries), text

    await page.set_viewport_size({"width": 390, "height": 844})
    await settled(page)
    await no_sideways_scroll(page)
    await screenshot(page, "45-statement-390")
