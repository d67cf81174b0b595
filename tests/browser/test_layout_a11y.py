"""Every page at 1280 and 390 px, as an admin and as a member: no sideways scrolling, and
axe-core finds no serious or critical accessibility violation.

axe-core (frontend/node_modules, from the locked npm install) is injected into each page.
The card entry is left out of the scan: in production it is Stripe.js's own iframe; here
it is the emulator's bare inputs, which are not ours to label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import unique_email
from tests.browser.harness import SCREENS
from tests.browser.helpers import open_page, settled, sign_in

AXE = Path(__file__).resolve().parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
PAGES = [
    "credits",
    "payment",
    "usage",
    "statement",
    "invoices",
    "members",
    "notifications",
    "activity",
    "api-keys",
]
SERIOUS = {"serious", "critical"}


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    assert AXE.is_file(), f"axe-core is missing ({AXE}): run npm ci in frontend/"
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const result = await axe.run(
            { exclude: [[".card-input-mount"]] },
            { resultTypes: ["violations"] },
          );
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
          }));
        }"""
    )
    return [violation for violation in result if violation["impact"] in SERIOUS]


async def check_every_page(page: Page, role: str, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900 if width > 600 else 844})
    problems: dict[str, Any] = {}
    for name in PAGES:
        if role == "member" and name in ("activity", "api-keys"):
            # Not in a member's menu; the address still answers with an explanation.
            await page.goto(page.url.rsplit("/", 1)[0] + f"/{name}")
            await expect(page.get_by_test_id("empty-state")).to_contain_text("Admins only")
        else:
            await open_page(page, name)
        await settled(page)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px ({role})"
        found = await axe_violations(page)
        if found:
            problems[name] = found
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(SCREENS / f"40-{name}-{role}-{width}.png"), full_page=True)
    assert not problems, json.dumps(problems, indent=1)


@pytest.mark.parametrize("width", [1280, 390])
async def test_every_page_as_admin(page: Page, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": 900})
    await sign_in(page, unique_email("a11y-admin"), "Ada Admin")
    await check_every_page(page, "admin", width)


@pytest.mark.parametrize("width", [1280, 390])
async def test_every_page_as_member(page: Page, width: int) -> None:
    admin_email, member_email = unique_email("a11y-owner"), unique_email("a11y-member")
    team_id = await sign_in(page, admin_email)
    await open_page(page, "members")
    await page.get_by_test_id("invite-email").fill(member_email)
    await page.get_by_test_id("invite-submit").click()
    await expect(page.get_by_test_id("form-notice")).to_contain_text("Invited")
    await page.evaluate("localStorage.clear()")
    await sign_in(page, member_email, "Mo Member")
    invitation = page.locator(f"[data-testid=invitation][data-team='{team_id}']")
    await invitation.get_by_test_id("invitation-accept").click()
    await expect(page.get_by_test_id("read-only")).to_be_visible()
    await check_every_page(page, "member", width)


async def test_sign_in_and_unknown_team_pages(page: Page) -> None:
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 844})
        await page.goto("/")
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        assert await axe_violations(page) == []
    await sign_in(page, unique_email("a11y-lost"))
    await page.goto("/t/00000000-0000-0000-0000-000000000000/credits")
    await expect(page.get_by_test_id("team-missing")).to_be_visible()
    assert await axe_violations(page) == []
