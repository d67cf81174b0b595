"""Invoice PDFs behind signed, expiring links; their text read back with pypdf."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pypdf import PdfReader

from app.billing import collection
from app.kit import clock
from tests.support.api import Actor, Api, join, sign_up
from tests.support.invoices import (
    NOV_1,
    UPCOMING,
    october_team,
    only_invoice,
    purchase_invoice_for,
    save_address,
)

INVOICES = """query($t: ID!) { team(id: $t) { invoices { edges { node { pdfUrl } } } } }"""
LEAVE = """mutation($t: ID!) { leaveTeam(input: {teamId: $t}) { errors { code } } }"""


def pdf_text(body: bytes) -> str:
    reader = PdfReader(io.BytesIO(body))
    return "\n".join(page.extract_text() for page in reader.pages)


def local(url: str) -> str:
    """The path and query of a link (the test client has its own base URL)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_the_pdf_shows_number_address_tax_id_lines_and_total(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_visa")
    clock.freeze(NOV_1)
    await collection.close_month()
    invoice = await only_invoice(api, admin)
    # No PUBLIC_URL: the link goes back where the request came in (the test client's base).
    assert invoice["pdfUrl"].startswith("http://test/invoices/")

    response = await client.get(local(invoice["pdfUrl"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert 'filename="CL-2026-000001.pdf"' in response.headers["content-disposition"]
    text = pdf_text(response.content)
    for expected in (
        "Creditline",
        "Invoice CL-2026-000001",
        "Monthly usage",
        "Status: PAID",
        "Issued: 2026-11-01",
        "Period: 1 October 2026 - 31 October 2026",
        "Paid with: Visa ending in 4242",
        "Creditline (development)",
        "1 Example Street",
        "San Francisco, CA 94105",
        "Tax ID: US EIN 00-0000000",
        "billing@creditline.example",
        "Analytical Engines GmbH",
        "Ada Lovelace",
        "Unter den Linden 1",
        "10117 Berlin",
        "Tax ID (eu_vat): DE136695976",
        "GPU seconds",
        "$3.23",
        "$10.13",
        "Total",
        "$13.37",
    ):
        assert expected in text, (expected, text)


async def test_a_tampered_or_expired_link_is_forbidden(
    api: Api, client: httpx.AsyncClient, admin: Actor
) -> None:
    clock.freeze(NOV_1)
    row = await purchase_invoice_for(admin, "25.00")
    other = await purchase_invoice_for(admin, "30.00")
    url = (await only_or_first(api, admin, str(row.id)))["pdfUrl"]
    assert (await client.get(local(url))).status_code == 200

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    tampered = [
        f"/invoices/{other.id}/pdf?{parts.query}",  # someone else's id, this signature
        f"{parts.path}?{urlencode({**query, 'expires': int(query['expires']) + 3600})}",
        f"{parts.path}?{urlencode({**query, 'signature': '0' * 64})}",
        f"{parts.path}?{urlencode({**query, 'signature': 'é'})}",
        f"{parts.path}?expires={query['expires']}",
        parts.path,
        f"/invoices/not-a-uuid/pdf?{parts.query}",
        f"{parts.path}?{urlencode({**query, 'team': str(uuid.uuid4())})}",  # another team
        f"{parts.path}?{urlencode({k: v for k, v in query.items() if k != 'team'})}",
    ]
    for path in tampered:
        assert (await client.get(path)).status_code == 403, path

    clock.advance(timedelta(hours=24, seconds=1))
    assert (await client.get(local(url))).status_code == 403
    # A fresh link works again.
    fresh = (await only_or_first(api, admin, str(row.id)))["pdfUrl"]
    assert (await client.get(local(fresh))).status_code == 200


async def only_or_first(api: Api, admin: Actor, invoice_id: str) -> dict[str, str]:
    from tests.support.invoices import list_invoices

    for edge in (await list_invoices(api, admin))["edges"]:
        if edge["node"]["id"] == invoice_id:
            node: dict[str, str] = edge["node"]
            return node
    raise AssertionError(invoice_id)


async def test_a_signed_link_to_a_missing_invoice_is_not_found(
    client: httpx.AsyncClient, admin: Actor
) -> None:
    from app.config import Settings
    from app.invoices import links
    from tests.support.api import JWT_SECRET

    settings = Settings(auth_jwt_secret=JWT_SECRET)
    url = links.invoice_pdf_url(settings, "", admin.team_id, uuid.uuid4())
    assert (await client.get(local(url))).status_code == 404


async def test_unicode_billing_details_and_the_preview_pdf(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_visa")
    saved = await save_address(
        api,
        admin,
        name="Zoë Łukasiewicz",
        organization="Żółć Sp. z o.o.",
        line1="ul. Piotrkowska 1",
        city="Łódź",
        postalCode="90-001",
        country="PL",
        taxId={"type": "eu_vat", "value": "PL8567346215"},
    )
    assert saved["errors"] == []
    upcoming = (await api.ok(UPCOMING, {"t": admin.team_id}, admin.token))["team"][
        "upcomingInvoice"
    ]
    response = await client.get(local(upcoming["pdfUrl"]))
    assert response.status_code == 200
    text = pdf_text(response.content)
    for expected in (
        "Invoice preview (not issued) UPCOMING",
        "Żółć Sp. z o.o.",
        "90-001 Łódź",
        "PL8567346215",
        "$13.37",
    ):
        assert expected in text, (expected, text)
    # The preview link is bound to its team.
    query = urlsplit(upcoming["pdfUrl"]).query
    assert (
        await client.get(f"/teams/{uuid.uuid4()}/upcoming-invoice/pdf?{query}")
    ).status_code == 403


async def test_a_members_link_stops_working_when_they_leave(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    """Access ends when it is taken away: the preview and invoice links a member was
    given die with the membership; the admin's and the operator's still work."""
    await october_team(api, operator, admin, "pm_card_visa")
    await purchase_invoice_for(admin, "5.00")
    member = await sign_up(api, "leaver@example.com")
    await join(api, admin, member)
    links = {}
    for who in (member, admin, operator):
        upcoming = await api.ok(UPCOMING, {"t": admin.team_id}, who.token)
        issued = await api.ok(INVOICES, {"t": admin.team_id}, who.token)
        links[who.email] = [
            upcoming["team"]["upcomingInvoice"]["pdfUrl"],
            issued["team"]["invoices"]["edges"][0]["node"]["pdfUrl"],
        ]
    for url in links[member.email]:
        assert (await client.get(local(url))).status_code == 200
    left = await api.ok(LEAVE, {"t": admin.team_id}, member.token)
    assert left["leaveTeam"]["errors"] == []
    for url in links[member.email]:
        response = await client.get(local(url))
        assert response.status_code == 403, url
        # Dropping the member from the link breaks its signature instead.
        query = {k: v for k, v in parse_qs(urlsplit(url).query).items() if k != "member"}
        bare = f"{urlsplit(url).path}?{urlencode(query, doseq=True)}"
        assert (await client.get(bare)).status_code == 403
    for url in links[admin.email] + links[operator.email]:
        assert (await client.get(local(url))).status_code == 200
