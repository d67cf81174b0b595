"""Seller details on invoices (frozen at issue), the payment method that paid, and the period
in words; PDF text read back with pypdf."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from app.billing import collection
from app.config import Settings
from app.events.commit import atomic
from app.invoices import documents, issuing, pdf, seller
from app.invoices.models import InvoiceKind, InvoiceStatus
from app.kit import clock
from app.payments import methods
from app.payments.emulator import StripeEmulator
from tests.support.api import Actor, Api
from tests.support.invoices import NOV_1, FakePurchase, october_team, only_invoice
from tests.support.payments import confirm_bank_setup

INVOICE_SELLER = """query($t: ID!) { team(id: $t) { invoices { edges { node {
  number periodText seller { name address taxId email }
  paymentMethod { type brand last4 description } } } } } }"""
SETUP_BANK = """mutation($t: ID!) { createSetupIntent(input: {teamId: $t, type: BANK_ACCOUNT}) {
  clientSecret errors { code } } }"""


def text_of(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


async def pdf_of(actor: Actor, invoice_id: uuid.UUID) -> str:
    document = await documents.invoice_document(uuid.UUID(actor.team_id), invoice_id)
    assert document is not None
    return text_of(pdf.render(document))


@pytest.fixture
def seller_settings(database: Settings) -> Iterator[None]:
    """Tests change the configured seller; the app's comes back afterwards."""
    yield
    seller.configure(database)


def configure(**values: str) -> None:
    seller.configure(Settings(**values))


async def _purchase_invoice(actor: Actor, payment_method_id: uuid.UUID | None) -> uuid.UUID:
    team = uuid.UUID(actor.team_id)
    purchase = FakePurchase(
        uuid.uuid4(), team, 25 * 10**8, "pi_test", clock.now(), payment_method_id
    )
    async with atomic() as tx:  # as a settlement does: its invoice.issued event goes with it
        invoice = await issuing.issue_purchase_invoice(tx.conn, purchase)
    return invoice.id


async def test_every_pdf_prints_the_configured_seller(admin: Actor, seller_settings: None) -> None:
    configure(
        seller_name="Analytical Billing Ltd",
        seller_address="10 Downing Street\\nLondon SW1A 2AA\\nUnited Kingdom",
        seller_tax_id="GB 123 4567 89",
        seller_email="help@analytical.example",
    )
    text = await pdf_of(admin, await _purchase_invoice(admin, None))
    for expected in (
        "Analytical Billing Ltd",
        "10 Downing Street",
        "London SW1A 2AA",
        "United Kingdom",
        "Tax ID: GB 123 4567 89",
        "Questions about this invoice: help@analytical.example",
    ):
        assert expected in text, (expected, text)


async def test_an_issued_invoice_keeps_the_seller_it_was_issued_by(
    api: Api, admin: Actor, seller_settings: None
) -> None:
    configure(seller_name="Old Name Inc", seller_tax_id="US EIN 11-1111111")
    old = await _purchase_invoice(admin, None)
    configure(seller_name="New Name Inc", seller_tax_id="US EIN 22-2222222")
    new = await _purchase_invoice(admin, None)

    old_text, new_text = await pdf_of(admin, old), await pdf_of(admin, new)
    assert "Old Name Inc" in old_text
    assert "US EIN 11-1111111" in old_text
    assert "New Name Inc" not in old_text
    assert "New Name Inc" in new_text

    data = await api.ok(INVOICE_SELLER, {"t": admin.team_id}, admin.token)
    sellers = [edge["node"]["seller"] for edge in data["team"]["invoices"]["edges"]]
    assert [s["name"] for s in sellers] == ["New Name Inc", "Old Name Inc"]  # newest first
    assert sellers[1]["taxId"] == "US EIN 11-1111111"
    assert sellers[1]["address"] == ["1 Example Street", "San Francisco, CA 94105", "United States"]


async def test_a_purchase_invoice_names_the_bank_account_that_paid(
    api: Api, admin: Actor, stripe_emulator: StripeEmulator
) -> None:
    setup = (await api.ok(SETUP_BANK, {"t": admin.team_id}, admin.token))["createSetupIntent"]
    confirmed = await confirm_bank_setup(stripe_emulator.url, setup["clientSecret"], "000123456789")
    bank = await methods.add_payment_method(uuid.UUID(admin.team_id), confirmed["payment_method"])

    text = await pdf_of(admin, await _purchase_invoice(admin, bank.id))
    assert "Paid with: STRIPE TEST BANK account ending in 6789" in text

    data = await api.ok(INVOICE_SELLER, {"t": admin.team_id}, admin.token)
    node = data["team"]["invoices"]["edges"][0]["node"]
    assert node["paymentMethod"] == {
        "type": "BANK_ACCOUNT",
        "brand": "STRIPE TEST BANK",
        "last4": "6789",
        "description": "STRIPE TEST BANK account ending in 6789",
    }
    assert node["periodText"] is None  # a purchase has no period


async def test_a_failed_monthly_charge_names_the_card_it_was_charged_to(
    api: Api, client: httpx.AsyncClient, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_chargeCustomerFail")
    clock.freeze(NOV_1)
    await collection.close_month()
    invoice = await only_invoice(api, admin)
    assert invoice["status"] == "PAYMENT_FAILED"
    text = await pdf_of(admin, uuid.UUID(invoice["id"]))
    assert "Charged to: Visa ending in 0341" in text
    assert "Period: 1 October 2026 - 31 October 2026" in text

    data = await api.ok(INVOICE_SELLER, {"t": admin.team_id}, admin.token)
    node = data["team"]["invoices"]["edges"][0]["node"]
    assert node["periodText"] == "1 October 2026 \u2013 31 October 2026"
    assert node["paymentMethod"]["description"] == "Visa ending in 0341"


def _december(seller_name: str) -> documents.InvoiceDocument:
    return documents.InvoiceDocument(
        id=str(uuid.uuid4()),
        team_id=uuid.uuid4(),
        number="CL-2027-000001",
        kind=InvoiceKind.MONTHLY_USAGE,
        status=InvoiceStatus.OPEN,
        currency="usd",
        period="2026-12",
        period_start=datetime(2026, 12, 1, tzinfo=UTC),
        period_end=datetime(2027, 1, 1, tzinfo=UTC),
        subtotal_cents=1234,
        tax_cents=0,
        total_cents=1234,
        lines=[documents.LineView("API usage", 1, 1234, 1234)],
        billing_address=None,
        issued_at=datetime(2027, 1, 1, 0, 5, tzinfo=UTC),
        paid_at=None,
        seller=seller.Seller(seller_name, ("Bahnhofstrasse 1", "8001 Zürich"), None, None),
    )


def test_the_period_reads_in_words_with_its_last_day() -> None:
    text = text_of(pdf.render(_december("Zürich Billing AG")))  # Latin-1: the core font
    assert "Period: 1 December 2026 - 31 December 2026" in text
    assert "Zürich Billing AG" in text
    assert "8001 Zürich" in text


def test_a_seller_outside_latin1_gets_the_unicode_font_and_the_en_dash() -> None:
    text = text_of(pdf.render(_december("Ωmega Billing Σ")))
    assert "Ωmega Billing Σ" in text
    assert "Period: 1 December 2026 \u2013 31 December 2026" in text


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC),
         "1 February 2026 \u2013 28 February 2026"),
        (datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC),
         "1 February 2028 \u2013 29 February 2028"),
        (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
         "1 December 2026 \u2013 31 December 2026"),
    ],
)  # fmt: skip
def test_period_in_words(start: datetime, end: datetime, words: str) -> None:
    assert documents.period_in_words(start, end) == words


def test_seller_settings_split_the_address_and_refuse_nul() -> None:
    settings = Settings(seller_address="Line 1\\nLine 2\n\nLine 3")
    assert seller.Seller.of(settings).address_lines == ("Line 1", "Line 2", "Line 3")
    with pytest.raises(ValidationError):
        Settings(seller_name="Bad\x00Name")
    with pytest.raises(ValidationError):
        Settings(seller_address="\ud800")
