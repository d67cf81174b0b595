"""The console end to end: sign-in, the pages, live balance, errors by field, read-only members."""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import BrowserContext, Page, Route, expect

from tests.browser.conftest import Gql, unique_email
from tests.browser.harness import SCREENS, Server
from tests.browser.helpers import open_page, screenshot, settled, sign_in

GRANT = """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
  credits { total } errors { code message } } }"""
USAGE = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) {
  credits { total } errors { code message } } }"""


async def test_sign_in_and_every_page(page: Page) -> None:
    await page.goto("/")
    await expect(page.get_by_test_id("sign-in")).to_be_visible()
    await screenshot(page, "00-sign-in")

    # A bad email is refused next to the email field, before any token exists.
    await page.get_by_label("Email").fill("not-an-email")
    await page.get_by_test_id("sign-in-submit").click()
    await expect(page.get_by_test_id("error-email")).to_contain_text("valid email")

    email = unique_email("ada")
    await sign_in(page, email, "Ada Lovelace")
    await expect(page.get_by_test_id("viewer-email")).to_have_text(email)
    await expect(page.get_by_test_id("balance-total")).to_have_text("$0.00")
    await expect(page.get_by_test_id("grants").get_by_test_id("empty-state")).to_be_visible()
    await screenshot(page, "01-credits-new-team")
    for name in ("payment", "invoices", "members"):
        await open_page(page, name)
        await screenshot(page, f"02-{name}-new-team")
    await expect(page.get_by_test_id("member-row")).to_have_count(1)

    # Deep links survive a reload (the server answers client routes with the console).
    await page.reload()
    await expect(page.get_by_test_id("member-row")).to_have_count(1)

    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("sign-in")).to_be_visible()


async def test_balance_changes_live_when_another_client_records_usage(
    page: Page, gql: Gql, operator_token: str
) -> None:
    team_id = await sign_in(page, unique_email("live"))
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", "live")
    total = page.get_by_test_id("balance-total")

    data = await gql(
        GRANT,
        {"input": {"teamId": team_id, "amount": "10.00", "description": "welcome"}},
        token=operator_token,
    )
    assert data["grantCredits"]["errors"] == []
    await expect(total).to_have_text("$10.00")
    await expect(page.get_by_test_id("balance-free")).to_have_text("$10.00")

    data = await gql(
        USAGE,
        {"input": {"teamId": team_id, "amount": "1.25", "idempotencyKey": "browser-usage-1"}},
        token=operator_token,
    )
    assert data["recordUsage"]["errors"] == []
    recorded = time.monotonic()
    # The page never polls: only the creditsUpdated subscription can change this text.
    await expect(total).to_have_text("$8.75", timeout=1000)
    latency = time.monotonic() - recorded
    print(f"usage recorded -> balance on screen: {latency * 1000:.0f} ms")
    await expect(page.get_by_test_id("grants").locator("tbody tr")).to_have_count(1)
    await screenshot(page, "03-credits-live-balance")


async def test_api_errors_show_next_to_their_field(page: Page) -> None:
    await sign_in(page, unique_email("errors"))
    limit = page.get_by_test_id("limit-card")
    await limit.get_by_test_id("limit-input").fill("12.345")
    await limit.get_by_test_id("limit-submit").click()
    error = limit.get_by_test_id("error-limit")
    await expect(error).to_be_visible()
    await expect(error).to_have_attribute("data-code", "INVALID_AMOUNT")
    await open_page(page, "members")
    await page.get_by_test_id("invite-email").fill("nobody")
    await page.get_by_test_id("invite-submit").click()
    await expect(page.get_by_test_id("error-email")).to_have_attribute("data-code", "INVALID_INPUT")
    await screenshot(page, "04-members-field-error")


async def test_member_sees_no_edit_controls(
    page: Page, context: BrowserContext, server: Server
) -> None:
    admin_email, member_email = unique_email("owner"), unique_email("reader")
    team_id = await sign_in(page, admin_email, "Olivia Owner")
    await open_page(page, "members")
    await page.get_by_test_id("invite-email").fill(member_email)
    await page.get_by_test_id("invite-submit").click()
    await expect(page.get_by_test_id("form-notice")).to_contain_text("Invited")
    await expect(page.get_by_test_id("member-row")).to_have_count(2)
    await screenshot(page, "05-members-admin")

    # The member signs in elsewhere (another browser session) and opens the admin's team.
    await page.evaluate("localStorage.clear()")
    await sign_in(page, member_email, "Riley Reader")
    # Not a member yet: the invitation waits for the member's consent.
    invitation = page.locator(f"[data-testid=invitation][data-team='{team_id}']")
    await expect(invitation).to_be_visible()
    await invitation.get_by_test_id("invitation-accept").click()
    await expect(page.get_by_test_id("invitations")).to_have_count(0)
    await page.goto(f"/t/{team_id}/credits")
    await expect(page.get_by_test_id("read-only")).to_be_visible()
    await expect(page.get_by_test_id("balance-total")).to_be_visible()
    for name in ("credits", "payment", "invoices", "members"):
        await open_page(page, name)
        await settled(page)
        main = page.locator("main")
        # Read-only: no controls, but leaving the team is the member's own choice.
        for control in ("form", "button", "input", "select", "textarea"):
            await expect(main.locator(f"{control}:not([data-testid=leave-team] *)")).to_have_count(
                0
            )
        await screenshot(page, f"06-{name}-member")
    await expect(page.get_by_test_id("member-row")).to_have_count(2)


async def test_balance_widget_follows_the_balance(
    page: Page, server: Server, gql: Gql, operator_token: str
) -> None:
    email = unique_email("widget")
    team_id = await sign_in(page, email)
    token = server.token(email)
    await page.goto(f"/widget.html?team={team_id}&token={token}")
    widget = page.locator("creditline-balance")
    await expect(widget.locator("[part=total]")).to_have_text("$0.00")
    await gql(GRANT, {"input": {"teamId": team_id, "amount": "3.50"}}, token=operator_token)
    await expect(widget.locator("[part=total]")).to_have_text("$3.50")
    await expect(widget.locator(".live")).to_be_visible()
    await page.screenshot(path=str(SCREENS / "07-balance-widget.png"))


async def test_loading_and_error_states_are_designed(page: Page) -> None:
    await sign_in(page, unique_email("states"))

    # Slow answers show skeletons, not blank cards.
    release = asyncio.Event()

    async def slow(route: Route) -> None:
        if "query Members" in (route.request.post_data or ""):
            await release.wait()
        await route.continue_()

    await page.route("**/graphql", slow)
    await page.get_by_test_id("nav-members").click()
    await expect(page.get_by_test_id("members").get_by_test_id("loading")).to_be_visible()
    await page.screenshot(path=str(SCREENS / "08-members-loading.png"))
    release.set()
    await expect(page.get_by_test_id("member-row")).to_have_count(1)
    await page.unroute("**/graphql")

    # A failed request shows an error with Retry, and Retry recovers.
    async def broken(route: Route) -> None:
        if "query Members" in (route.request.post_data or ""):
            await route.fulfill(status=502, body="bad gateway")
        else:
            await route.continue_()

    await page.route("**/graphql", broken)
    await page.reload()
    error = page.get_by_test_id("members").get_by_test_id("error-state")
    await expect(error).to_contain_text("502")
    await page.screenshot(path=str(SCREENS / "09-members-error.png"))
    await page.unroute("**/graphql")
    await error.get_by_role("button", name="Retry").click()
    await expect(page.get_by_test_id("member-row")).to_have_count(1)


async def test_a_refused_token_returns_to_sign_in(page: Page) -> None:
    await sign_in(page, unique_email("expired"))
    await page.evaluate("localStorage.setItem('creditline.token', 'not-a-valid-token')")
    await page.reload()
    await expect(page.get_by_test_id("sign-in")).to_be_visible()
    await expect(page.get_by_test_id("session-ended")).to_be_visible()


async def test_host_platform_hands_over_a_token_in_the_url(page: Page, server: Server) -> None:
    """Production's path in: `/?token=` from the host platform (dev sign-in not needed).
    A link's account is confirmed by name before it is taken (login CSRF)."""
    email = unique_email("handoff")
    await page.goto(f"/?token={server.token(email)}")
    await expect(page.get_by_test_id("confirm-email")).to_have_text(email)
    await page.get_by_test_id("confirm-continue").click()
    await expect(page.get_by_test_id("viewer-email")).to_have_text(email)
    await expect(page.get_by_test_id("balance-total")).to_be_visible()
    assert "token=" not in page.url


async def test_a_link_with_someone_elses_token_asks_before_switching(
    page: Page, server: Server
) -> None:
    """Login CSRF: a link carrying another account's token never replaces the session
    silently; the console names that account and waits for the person's answer."""
    victim, attacker = unique_email("victim"), unique_email("attacker")
    await sign_in(page, victim)
    await page.goto(f"/?token={server.token(attacker)}")
    await expect(page.get_by_test_id("confirm-email")).to_have_text(attacker)
    assert "token=" not in page.url
    await page.get_by_test_id("confirm-cancel").click()
    await expect(page.get_by_test_id("viewer-email")).to_have_text(victim)
    # Reloading does not bring the offer back: the token left the address bar.
    await page.reload()
    await expect(page.get_by_test_id("viewer-email")).to_have_text(victim)
    # Only an explicit yes switches.
    await page.goto(f"/?token={server.token(attacker)}")
    await page.get_by_test_id("confirm-continue").click()
    await expect(page.get_by_test_id("viewer-email")).to_have_text(attacker)


async def test_admin_changes_a_role_and_removes_a_member(page: Page) -> None:
    await sign_in(page, unique_email("lead"))
    await open_page(page, "members")
    colleague = unique_email("colleague")
    await page.get_by_test_id("invite-email").fill(colleague)
    await page.get_by_test_id("invite-submit").click()
    row = page.locator(f"[data-testid=member-row][data-email='{colleague}']")
    await expect(row).to_be_visible()
    await row.get_by_test_id("member-role").select_option("ADMIN")
    await expect(row.get_by_test_id("member-role")).to_have_value("ADMIN")
    await page.reload()
    await expect(row.get_by_test_id("member-role")).to_have_value("ADMIN")
    await row.get_by_test_id("member-remove").click()
    await expect(page.get_by_test_id("member-row")).to_have_count(1)
    # The last admin cannot leave: the error sits on that member's row.
    me = page.get_by_test_id("member-row")
    await me.get_by_test_id("member-role").select_option("MEMBER")
    await expect(me.get_by_test_id("member-error")).to_be_visible()
    await expect(me.get_by_test_id("member-role")).to_have_value("ADMIN")


async def test_graphql_ide_runs_queries_and_subscriptions_offline(
    page: Page, server: Server, gql: Gql, operator_token: str
) -> None:
    team_id = await sign_in(page, unique_email("ide"))
    other_origins: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((server.url + "/", "data:"))
            else other_origins.append(request.url)
        ),
    )
    await page.goto("/graphql")
    # GraphiQL 5: Monaco editors, their workers served from this origin too.
    editor = page.locator(".graphiql-query-editor .monaco-editor")
    await expect(editor).to_be_visible()
    # The console's token is already in the Headers tab.
    run = page.locator(".graphiql-execute-button")

    async def run_query(text: str) -> None:
        await editor.click()
        await page.keyboard.press("Control+A")
        await page.keyboard.press("Delete")
        await page.keyboard.insert_text(text)
        # Monaco closes brackets as they are typed: drop what it added after the cursor.
        await page.keyboard.press("Shift+Control+End")
        await page.keyboard.press("Delete")
        await run.click()

    await run_query("{ viewer { email memberships { role } } }")
    result = page.locator(".graphiql-response")
    await expect(result).to_contain_text('"role": "ADMIN"')

    await run_query(f'subscription {{ creditsUpdated(teamId: "{team_id}") {{ total }} }}')
    await expect(result).to_contain_text('"total": "0.00"')
    await gql(
        """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { errors { code } } }""",
        {"input": {"teamId": team_id, "amount": "4.00"}},
        token=operator_token,
    )
    await expect(result).to_contain_text('"total": "4.00"')
    await page.screenshot(path=str(SCREENS / "30-graphql-ide.png"))
    assert other_origins == []
