"""Activity, API keys, open invitations and leaving a team, as a person uses them."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import unique_email
from tests.browser.harness import Server
from tests.browser.helpers import open_page, screenshot, sign_in


async def test_api_key_secret_is_shown_once_and_revoking_asks(page: Page, server: Server) -> None:
    team_id = await sign_in(page, unique_email("keys"))
    await open_page(page, "api-keys")
    form = page.get_by_test_id("api-key-form")
    await form.get_by_test_id("api-key-submit").click()
    await expect(form.get_by_test_id("error-name")).to_be_visible()
    await form.get_by_test_id("api-key-name").fill("Nightly export")
    await form.get_by_test_id("api-key-submit").click()
    secret = page.get_by_test_id("api-key-secret-value")
    await expect(secret).to_be_visible()
    value = (await secret.inner_text()).strip()
    key = page.get_by_test_id("api-key").and_(page.locator("[data-name='Nightly export']"))
    await expect(key).to_contain_text("Active")
    await screenshot(page, "52-api-key-created")
    # The secret works as a bearer token for this team, read only.
    async with httpx.AsyncClient(base_url=server.url) as http:
        query = "query($id: ID!) { team(id: $id) { credits { total } } }"
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": {"id": team_id}},
            headers={"Authorization": f"Bearer {value}"},
        )
        assert response.json()["data"]["team"]["credits"]["total"] == "0.00", response.text
    # Gone once stored: nothing shows it again.
    await page.get_by_test_id("api-key-secret-done").click()
    await expect(secret).to_have_count(0)
    await page.reload()
    assert value not in await page.content()

    await key.get_by_test_id("api-key-revoke").click()
    await expect(key.get_by_test_id("confirm-revoke")).to_be_visible()
    await key.get_by_test_id("confirm-revoke-yes").click()
    await expect(key).to_contain_text("Revoked")
    await expect(key.get_by_test_id("api-key-revoke")).to_have_count(0)


async def test_withdrawing_an_invitation_and_leaving_a_team(page: Page) -> None:
    admin, guest = unique_email("host"), unique_email("guest")
    team_id = await sign_in(page, admin)
    await open_page(page, "members")
    await page.get_by_test_id("invite-email").fill(unique_email("mistake"))
    await page.get_by_test_id("invite-submit").click()
    invitations = page.get_by_test_id("team-invitations")
    await expect(invitations.get_by_test_id("team-invitation")).to_have_count(1)
    await invitations.get_by_test_id("invitation-cancel").click()
    await expect(invitations.get_by_test_id("team-invitation")).to_have_count(0)
    # The activity log says so, in words.
    await open_page(page, "activity")
    withdrawn = page.locator("[data-testid=audit-entry][data-action=INVITATION_CANCELED]")
    await expect(withdrawn).to_contain_text("Withdrew an invitation")
    await expect(withdrawn).to_contain_text(admin)
    await screenshot(page, "53-activity")
    await open_page(page, "members")

    # The last admin cannot leave: said beside the control, in words.
    await page.get_by_test_id("leave-team-button").click()
    await page.get_by_test_id("leave-confirm").click()
    await expect(page.get_by_test_id("leave-error")).to_be_visible()

    await page.get_by_test_id("invite-email").fill(guest)
    await page.get_by_test_id("invite-submit").click()
    await expect(page.get_by_test_id("form-notice")).to_contain_text("Invited")
    await page.evaluate("localStorage.clear()")
    await sign_in(page, guest)
    invitation = page.locator(f"[data-testid=invitation][data-team='{team_id}']")
    await invitation.get_by_test_id("invitation-accept").click()
    await expect(page.get_by_test_id("read-only")).to_be_visible()
    await open_page(page, "members")
    await page.get_by_test_id("leave-team-button").click()
    await page.get_by_test_id("leave-confirm").click()
    # Back on the guest's own team; the left team is no longer offered.
    await expect(page.get_by_test_id("balance-total")).to_be_visible()
    await expect(
        page.get_by_test_id("team-switcher").locator(f"option[value='{team_id}']")
    ).to_have_count(0)
