"""Billing address and tax id: field errors, canonical forms, admin-only, and the Stripe sync."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.billing import address_sync
from app.config import Settings
from app.invoices import address as addresses
from app.invoices import tax_ids
from app.invoices.models import BillingAddress
from app.payments import gateway as payment_gateway
from app.payments.models import StripeCustomer
from app.payments.stripe import StripeGateway
from tests.support.api import Actor, Api, join, sign_up
from tests.support.invoices import ADDRESS_FIELDS, BERLIN, UPDATE_ADDRESS, save_address
from tests.support.payments import STRIPE_API_KEY

US = {
    "name": "Grace Hopper",
    "line1": "1 Navy Way",
    "city": "Arlington",
    "state": "VA",
    "postalCode": "22202",
    "country": "US",
}


async def current(api: Api, actor: Actor, team_id: str | None = None) -> dict[str, Any] | None:
    data = await api.ok(
        f"query($t: ID!) {{ team(id: $t) {{ billingAddress {{ {ADDRESS_FIELDS} }} }} }}",
        {"t": team_id or actor.team_id},
        actor.token,
    )
    address: dict[str, Any] | None = data["team"]["billingAddress"]
    return address


async def test_save_normalises_and_replaces(api: Api, admin: Actor) -> None:
    assert await current(api, admin) is None
    saved = await save_address(
        api,
        admin,
        **{**BERLIN, "country": " de ", "email": "Billing@Engines.EXAMPLE", "line2": "  "},
    )
    assert saved["errors"] == []
    assert saved["billingAddress"] == {
        "name": "Ada Lovelace",
        "organization": "Analytical Engines GmbH",
        "email": "billing@engines.example",
        "line1": "Unter den Linden 1",
        "line2": None,
        "city": "Berlin",
        "state": None,
        "postalCode": "10117",
        "country": "DE",
        "taxId": {"type": "eu_vat", "value": "DE136695976"},
    }
    assert await current(api, admin) == saved["billingAddress"]
    # A new save replaces everything; no taxId means none.
    replaced = await save_address(api, admin, **US)
    assert replaced["errors"] == []
    assert replaced["billingAddress"]["taxId"] is None
    assert replaced["billingAddress"]["organization"] is None
    assert await current(api, admin) == replaced["billingAddress"]
    assert await BillingAddress.all().count() == 1


BAD_ADDRESSES: list[tuple[dict[str, Any], str]] = [
    ({"name": "  "}, "name"),
    ({"line1": ""}, "line1"),
    ({"city": ""}, "city"),
    ({"country": ""}, "country"),
    ({"country": "XX"}, "country"),
    ({"country": "USA"}, "country"),
    ({"name": "x" * 201}, "name"),
    ({"line1": "x" * 201}, "line1"),
    ({"line2": "Apt 1\nDrop table"}, "line2"),
    ({"organization": "Acme\x00"}, "organization"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"state": None}, "state"),
    ({"state": "ZZ"}, "state"),
    ({"postalCode": None}, "postalCode"),
    ({"postalCode": "2220"}, "postalCode"),
    ({"postalCode": "x" * 21}, "postalCode"),
]


@pytest.mark.parametrize(("change", "field"), BAD_ADDRESSES)
async def test_bad_addresses_name_their_field(
    api: Api, admin: Actor, change: dict[str, Any], field: str
) -> None:
    payload = await save_address(api, admin, **{**US, **change})
    assert payload["billingAddress"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)]
    assert await current(api, admin) is None


BAD_TAX_IDS: list[tuple[str, str, str]] = [
    ("xx_vat", "123", "taxId.type"),
    ("", "123", "taxId.type"),
    ("eu_vat", "", "taxId.value"),
    ("eu_vat", "123456789", "taxId.value"),  # no country prefix
    ("eu_vat", "US123456789", "taxId.value"),  # not an EU prefix
    ("eu_vat", "DE12345678", "taxId.value"),  # DE takes 9 digits
    ("eu_vat", "GR123456789", "taxId.value"),  # Greece is EL
    ("eu_vat", "NL123456789X01", "taxId.value"),
    ("gb_vat", "GB12345678", "taxId.value"),
    ("us_ein", "12-345678", "taxId.value"),
    ("us_ein", "00-1234567", "taxId.value"),
    ("ca_bn", "12345678", "taxId.value"),
    ("au_abn", "12345678912", "taxId.value"),  # bad check digit
    ("in_gst", "22AAAAA0000A1X5", "taxId.value"),
    ("nz_gst", "1234567", "taxId.value"),
    ("ch_vat", "CHE-123.456.789", "taxId.value"),  # needs MWST/TVA/IVA
    ("jp_trn", "1234567891234", "taxId.value"),
    ("br_cnpj", "01.234.456/5432-1", "taxId.value"),
    ("mx_rfc", "ABC0102", "taxId.value"),
    ("ke_pin", "!!", "taxId.value"),  # a type without a known format still needs sane text
    ("eu_vat", "DE" + "1" * 70, "taxId.value"),
]


@pytest.mark.parametrize(("kind", "value", "field"), BAD_TAX_IDS)
async def test_bad_tax_ids_name_their_field(
    api: Api, admin: Actor, kind: str, value: str, field: str
) -> None:
    payload = await save_address(api, admin, **{**US, "taxId": {"type": kind, "value": value}})
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)]
    assert await current(api, admin) is None


GOOD_TAX_IDS: list[tuple[str, str, str]] = [
    ("eu_vat", "de 136.695.976", "DE136695976"),
    ("eu_vat", "EL094259216", "EL094259216"),
    ("eu_vat", "FRK7399859412", "FRK7399859412"),
    ("eu_vat", "NL004495445B01", "NL004495445B01"),
    ("eu_vat", "ATU13585627", "ATU13585627"),
    ("EU_VAT", "ESQ2818015F", "ESQ2818015F"),
    ("gb_vat", "980 7806 84", "GB980780684"),
    ("gb_vat", "GB980780684", "GB980780684"),
    ("us_ein", "123456789", "12-3456789"),
    ("ca_bn", "123456782", "123456782"),
    ("ca_gst_hst", "123456782RT0002", "123456782RT0002"),
    ("au_abn", "51 824 753 556", "51824753556"),
    ("in_gst", "27AAPFU0939F1ZV", "27AAPFU0939F1ZV"),
    ("nz_gst", "136-410-132", "136410132"),
    ("es_cif", "A13585625", "A13585625"),
    ("ch_vat", "CHE107787577 mwst", "CHE-107.787.577 MWST"),
    ("kr_brn", "1234567890", "123-45-67890"),
    ("br_cnpj", "16727230000197", "16.727.230/0001-97"),
    ("ke_pin", "p051234567a", "P051234567A"),
]


@pytest.mark.parametrize(("kind", "value", "canonical"), GOOD_TAX_IDS)
def test_good_tax_ids_take_their_canonical_form(kind: str, value: str, canonical: str) -> None:
    tax_id = tax_ids.validate_tax_id(kind, value)
    assert (tax_id.type, tax_id.value) == (kind.lower(), canonical)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(addresses.InvalidAddress) as caught:
        addresses.validate(
            addresses.AddressInput(
                name="",
                line1="",
                city="Springfield",
                country="US",
                email="nope",
                tax_id_type="eu_vat",
                tax_id_value="123",
                tax_id_given=True,
            )
        )
    fields = [e.field for e in caught.value.errors]
    assert fields == ["name", "email", "line1", "state", "postalCode", "taxId.value"]


async def test_all_errors_come_back_in_the_payload(api: Api, admin: Actor) -> None:
    payload = await save_address(
        api, admin, name="", line1="x", city="", country="ZZ", taxId={"type": "no", "value": "1"}
    )
    assert [e["field"] for e in payload["errors"]] == ["name", "city", "country", "taxId.type"]


async def test_only_admins_update_and_members_read(api: Api, admin: Actor) -> None:
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    variables = {"input": {"teamId": admin.team_id, **US}}
    assert await api.error_code(UPDATE_ADDRESS, variables, member.token) == "FORBIDDEN"
    stranger = await sign_up(api, "stranger@example.com")
    assert await api.error_code(UPDATE_ADDRESS, variables, stranger.token) == "NOT_FOUND"
    assert (await save_address(api, admin, **US))["errors"] == []
    assert (await current(api, member, admin.team_id)) == (await current(api, admin))


# --- the Stripe customer -------------------------------------------------------------------------


async def stripe_customer(
    settings: Settings, team_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The team's customer and tax ids as localstripe holds them."""
    customer_id = (await StripeCustomer.get(team_id=uuid.UUID(team_id))).stripe_id
    base = settings.stripe_api_base
    async with httpx.AsyncClient(base_url=base, auth=(STRIPE_API_KEY, "")) as http:
        customer = (await http.get(f"/v1/customers/{customer_id}")).json()
        tax_ids = (await http.get(f"/v1/customers/{customer_id}/tax_ids")).json()["data"]
    return customer, tax_ids


async def test_the_stripe_customer_gets_name_email_address_and_tax_id(
    api: Api, admin: Actor, database: Settings
) -> None:
    assert (await save_address(api, admin, **BERLIN))["errors"] == []
    customer, tax_ids = await stripe_customer(database, admin.team_id)
    assert customer["name"] == "Analytical Engines GmbH"
    assert customer["email"] == "billing@engines.example"
    assert customer["address"]["line1"] == "Unter den Linden 1"
    assert (customer["address"]["city"], customer["address"]["country"]) == ("Berlin", "DE")
    assert [(t["type"], t["value"]) for t in tax_ids] == [("eu_vat", "DE136695976")]
    row = await BillingAddress.get(team_id=uuid.UUID(admin.team_id))
    assert (row.synced_version, row.sync_error) == (row.version, None)

    # Removing the tax id removes it at Stripe too.
    assert (await save_address(api, admin, **{**BERLIN, "taxId": None}))["errors"] == []
    assert (await stripe_customer(database, admin.team_id))[1] == []


async def test_a_tax_id_stripe_refuses_is_kept_and_noted(
    api: Api, admin: Actor, database: Settings
) -> None:
    # localstripe accepts only eu_vat, nz_gst, au_abn and es_cif: a valid EIN is refused there.
    saved = await save_address(api, admin, **US, taxId={"type": "us_ein", "value": "12-3456789"})
    assert saved["errors"] == []
    assert saved["billingAddress"]["taxId"] == {"type": "us_ein", "value": "12-3456789"}
    row = await BillingAddress.get(team_id=uuid.UUID(admin.team_id))
    assert row.synced_version == row.version  # retrying would not help
    assert "refused the tax id" in (row.sync_error or "")
    customer, _ = await stripe_customer(database, admin.team_id)
    assert customer["address"]["state"] == "VA"


async def test_stripe_down_never_loses_the_saved_address(
    api: Api, admin: Actor, database: Settings
) -> None:
    unreachable = StripeGateway(STRIPE_API_KEY, "http://127.0.0.1:9", 0, timeout=2.0)
    real = payment_gateway.set_gateway(unreachable)
    try:
        saved = await save_address(api, admin, **BERLIN)
    finally:
        payment_gateway.set_gateway(real)
        await unreachable.aclose()
    assert saved["errors"] == []
    assert (await current(api, admin)) == saved["billingAddress"]
    row = await BillingAddress.get(team_id=uuid.UUID(admin.team_id))
    assert row.synced_version < row.version
    assert row.sync_error is not None

    # A later pass (the scheduler runs this) catches up.
    assert await address_sync.resync_pending() == 1
    row = await BillingAddress.get(team_id=uuid.UUID(admin.team_id))
    assert (row.synced_version, row.sync_error) == (row.version, None)
    customer, tax_ids = await stripe_customer(database, admin.team_id)
    assert customer["address"]["city"] == "Berlin"
    assert [t["value"] for t in tax_ids] == ["DE136695976"]
