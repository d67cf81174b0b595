"""Invoices: the monthly close across a month end, its charge against localstripe, suspension,
purchase invoices, gap-free numbers, frozen billing details, reading and pagination."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.billing import collection, scheduler
from app.credits.models import AlertKind, BillingAlert, ClosedPeriod, CreditAccount
from app.events.commit import atomic
from app.invoices import close, issuing
from app.invoices.models import Invoice, InvoiceCounter, InvoiceStatus
from app.kit import clock
from app.kit.errors import DomainError
from app.payments import gateway as payment_gateway
from tests.support.api import Actor, Api, join, sign_up
from tests.support.billing import set_limit, use
from tests.support.invoices import (
    ADDRESS_FIELDS,
    BERLIN,
    INVOICE_FIELDS,
    INVOICES,
    NOV_1,
    OCT_20,
    OCTOBER_LINES,
    UPCOMING,
    FakePurchase,
    card_on_file,
    count_charges,
    invoiced_usage,
    list_invoices,
    october_team,
    only_invoice,
    purchase_invoice_for,
    save_address,
)

PAY = f"""mutation($t: ID!, $i: ID!) {{ payInvoice(input: {{teamId: $t, invoiceId: $i}}) {{
  invoice {{ {INVOICE_FIELDS} }} errors {{ code field message }} }} }}"""
CREDITS_STATE = """query($t: ID!) { team(id: $t) { credits {
  invoicedThisMonth invoicedRemaining invoicingSuspended status } } }"""


# --- the close across a month end --------------------------------------------------------------


async def test_month_end_close_issues_and_charges_the_sum_of_rounded_lines(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_visa")
    # Still October: the preview shows the invoice as it would look; nothing is issued.
    upcoming = (await api.ok(UPCOMING, {"t": admin.team_id}, admin.token))["team"]
    assert upcoming["upcomingInvoice"]["number"] == "UPCOMING"
    assert upcoming["upcomingInvoice"]["lines"] == OCTOBER_LINES
    assert upcoming["upcomingInvoice"]["total"] == "13.37"
    assert (await list_invoices(api, admin))["edges"] == []

    clock.freeze(NOV_1)
    report = await collection.close_month()
    assert (report.period, report.issued, report.paid, report.failed) == ("2026-10", 1, 1, 0)

    invoice = await only_invoice(api, admin)
    assert invoice["number"] == "CL-2026-000001"
    assert (invoice["kind"], invoice["status"], invoice["currency"]) == (
        "MONTHLY_USAGE",
        "PAID",
        "usd",
    )
    assert invoice["lines"] == OCTOBER_LINES
    # Totals are the sum of the rounded lines, not the rounded exact sum (13.36).
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("13.37", "0.00", "13.37")
    assert invoice["period"] == "2026-10"
    assert invoice["periodStart"] == "2026-10-01T00:00:00+00:00"
    assert invoice["periodEnd"] == "2026-11-01T00:00:00+00:00"
    assert invoice["paidAt"] is not None
    assert invoice["billingAddress"]["taxId"] == {"type": "eu_vat", "value": "DE136695976"}

    # The charge really happened at Stripe, for the invoice's total in cents.
    row = await Invoice.get(id=uuid.UUID(invoice["id"]))
    assert row.payment_intent_id is not None
    intent = await payment_gateway.gateway().retrieve_payment_intent(row.payment_intent_id)
    assert (intent.status, intent.amount) == ("succeeded", 1337)

    # November starts clean; October is closed: late usage dated in it is refused.
    state = (await api.ok(CREDITS_STATE, {"t": admin.team_id}, admin.token))["team"]["credits"]
    assert state == {
        "invoicedThisMonth": "0.00",
        "invoicedRemaining": "100.00",
        "invoicingSuspended": False,
        "status": "ACTIVE",
    }
    late = await use(
        api, operator, admin.team_id, "1.00", "late", occurred_at="2026-10-31T23:59:00Z"
    )
    assert late["errors"][0]["code"] == "PERIOD_CLOSED"
    assert (await api.ok(UPCOMING, {"t": admin.team_id}, admin.token))["team"][
        "upcomingInvoice"
    ] is None


async def test_a_declined_charge_fails_the_invoice_alerts_and_suspends_until_paid(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_chargeCustomerFail")
    clock.freeze(NOV_1)
    report = await collection.close_month("2026-10")
    assert (report.issued, report.paid, report.failed) == (1, 0, 1)

    invoice = await only_invoice(api, admin)
    assert invoice["status"] == "PAYMENT_FAILED"
    assert invoice["failureReason"] == "Your card was declined."
    assert invoice["paidAt"] is None
    alerts = await BillingAlert.filter(team_id=uuid.UUID(admin.team_id))
    assert [a.kind for a in alerts] == [AlertKind.PAYMENT_FAILED]
    assert "CL-2026-000001" in alerts[0].message

    # Suspended: usage beyond the team's credits is rejected, whatever the limit says.
    state = (await api.ok(CREDITS_STATE, {"t": admin.team_id}, admin.token))["team"]["credits"]
    assert (state["invoicingSuspended"], state["invoicedRemaining"]) == (True, "0.00")
    refused = await use(api, operator, admin.team_id, "0.50", "nov-1")
    assert refused["errors"][0]["code"] == "INVOICED_LIMIT_REACHED"

    # The scheduler retries only once the retry is due: a day later.
    await scheduler.run_once()
    assert (await Invoice.get(id=uuid.UUID(invoice["id"]))).charge_attempts == 1
    clock.advance(timedelta(days=1, minutes=1))
    await scheduler.run_once()  # declined again: still failed, alerted once for this invoice
    row = await Invoice.get(id=uuid.UUID(invoice["id"]))
    assert (row.status, row.charge_attempts) == (InvoiceStatus.PAYMENT_FAILED, 2)
    assert await BillingAlert.filter(team_id=uuid.UUID(admin.team_id)).count() == 1

    # A working card, then "retry-payments": paid, and invoiced billing resumes.
    await card_on_file(admin, "pm_card_visa")
    retried = await collection.retry_payments(due_only=False)
    assert (retried.attempted, retried.paid) == (1, 1)
    invoice = await only_invoice(api, admin)
    assert (invoice["status"], invoice["failureReason"]) == ("PAID", None)
    state = (await api.ok(CREDITS_STATE, {"t": admin.team_id}, admin.token))["team"]["credits"]
    assert state["invoicingSuspended"] is False
    assert (await use(api, operator, admin.team_id, "0.50", "nov-1"))["errors"] == []


async def test_pay_invoice_mutation_after_a_decline(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_chargeCustomerFail")
    clock.freeze(NOV_1)
    await collection.close_month()
    invoice = await only_invoice(api, admin)

    again = (await api.ok(PAY, {"t": admin.team_id, "i": invoice["id"]}, admin.token))["payInvoice"]
    assert again["errors"][0]["code"] == "PAYMENT_FAILED"
    assert again["invoice"]["status"] == "PAYMENT_FAILED"
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    assert await api.error_code(PAY, {"t": admin.team_id, "i": invoice["id"]}, member.token) == (
        "FORBIDDEN"
    )

    await card_on_file(admin, "pm_card_visa")
    paid = (await api.ok(PAY, {"t": admin.team_id, "i": invoice["id"]}, admin.token))["payInvoice"]
    assert paid["errors"] == []
    assert paid["invoice"]["status"] == "PAID"
    # Paying a paid invoice changes nothing and charges nothing.
    before = (await Invoice.get(id=uuid.UUID(invoice["id"]))).payment_intent_id
    twice = (await api.ok(PAY, {"t": admin.team_id, "i": invoice["id"]}, admin.token))["payInvoice"]
    assert (twice["errors"], twice["invoice"]["status"]) == ([], "PAID")
    assert (await Invoice.get(id=uuid.UUID(invoice["id"]))).payment_intent_id == before
    unknown = await api.ok(PAY, {"t": admin.team_id, "i": str(uuid.uuid4())}, admin.token)
    assert unknown["payInvoice"]["errors"][0]["code"] == "NOT_FOUND"


async def test_no_payment_method_fails_the_invoice(api: Api, admin: Actor, operator: Actor) -> None:
    await october_team(api, operator, admin, None)
    clock.freeze(NOV_1)
    report = await collection.close_month()
    assert report.failed == 1
    invoice = await only_invoice(api, admin)
    assert invoice["status"] == "PAYMENT_FAILED"
    assert invoice["failureReason"] == "No default payment method on file."
    assert (await CreditAccount.get(team_id=uuid.UUID(admin.team_id))).invoicing_suspended


async def test_close_run_twice_issues_and_charges_once(
    api: Api, admin: Actor, operator: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    charges = count_charges(monkeypatch)
    await october_team(api, operator, admin, "pm_card_visa")
    clock.freeze(NOV_1)
    first = await collection.close_month()
    second = await collection.close_month()
    assert (first.issued, first.already_issued) == (1, 0)
    assert (second.issued, second.already_issued, second.paid) == (0, 1, 0)
    assert len(charges) == 1
    assert await Invoice.all().count() == 1
    # The losing insert rolled its number back: the next invoice takes the next number.
    await purchase_invoice_for(admin, "25.00")
    numbers = sorted(await Invoice.all().values_list("number", flat=True))
    assert numbers == ["CL-2026-000001", "CL-2026-000002"]


async def test_close_refuses_a_bad_or_unfinished_period() -> None:
    clock.freeze(OCT_20)
    for period, message in [
        ("2026-13", "A period is YYYY-MM"),
        ("oct", "A period is YYYY-MM"),
        ("2026-10", "has not ended"),
        ("2026-11", "has not ended"),
    ]:
        with pytest.raises(DomainError) as caught:
            await collection.close_month(period)
        assert message in caught.value.message
        assert caught.value.field == "period"
    assert await ClosedPeriod.all().count() == 0


async def test_teams_without_invoiced_usage_get_no_invoice(
    api: Api, admin: Actor, operator: Actor
) -> None:
    clock.freeze(OCT_20)
    await set_limit(admin.team_id, "10.00")  # a limit, but no usage
    clock.freeze(NOV_1)
    report = await collection.close_month()
    assert (report.teams, report.issued) == (0, 0)
    assert await Invoice.all().count() == 0
    assert await close.periods_to_close() == []


async def test_tiny_usage_gives_a_zero_invoice_marked_paid_without_a_charge(
    api: Api, admin: Actor, operator: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    charges = count_charges(monkeypatch)
    clock.freeze(OCT_20)
    await set_limit(admin.team_id, "10.00")
    await invoiced_usage(api, operator, admin, [("0.004", "tiny")])
    clock.freeze(NOV_1)
    await collection.close_month()
    invoice = await only_invoice(api, admin)
    assert (invoice["status"], invoice["total"], invoice["lines"][0]["exactAmount"]) == (
        "PAID",
        "0.00",
        "0.004",
    )
    assert charges == []


async def test_the_scheduler_closes_shortly_after_the_month_starts(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_visa")
    clock.freeze(datetime(2026, 11, 1, 0, 1, tzinfo=UTC))
    await scheduler.run_once()  # too early: usage stamped at 23:59 may still be arriving
    assert await Invoice.all().count() == 0
    clock.freeze(datetime(2026, 11, 1, 0, 6, tzinfo=UTC))
    await scheduler.run_once()
    assert (await only_invoice(api, admin))["status"] == "PAID"
    assert await close.periods_to_close() == []
    await scheduler.run_once()  # nothing left to do
    assert await Invoice.all().count() == 1


# --- purchase invoices and numbering ---------------------------------------------------------


async def test_a_card_purchase_gets_a_paid_credit_purchase_invoice(api: Api, admin: Actor) -> None:
    await card_on_file(admin, "pm_card_visa")
    await save_address(api, admin, **BERLIN)
    data = await api.ok(
        f"""mutation($t: ID!) {{ purchaseCredits(input: {{teamId: $t, amount: "25.00"}}) {{
          purchase {{ id status invoice {{ {INVOICE_FIELDS} }} }} errors {{ code message }} }} }}""",
        {"t": admin.team_id},
        admin.token,
    )
    purchase = data["purchaseCredits"]["purchase"]
    assert purchase["status"] == "SUCCEEDED", data
    invoice = purchase["invoice"]
    assert (invoice["kind"], invoice["status"], invoice["total"]) == (
        "CREDIT_PURCHASE",
        "PAID",
        "25.00",
    )
    assert invoice["lines"] == [
        {
            "description": "Prepaid credits",
            "quantity": "1",
            "unitAmount": "25.00",
            "amount": "25.00",
            "exactAmount": None,
        }
    ]
    assert invoice["billingAddress"]["organization"] == "Analytical Engines GmbH"
    assert invoice["period"] is None
    assert (await only_invoice(api, admin))["id"] == invoice["id"]
    # Issued once, even when settlement is reported again.
    row = await Invoice.get(id=uuid.UUID(invoice["id"]))
    async with atomic() as tx:
        again = await issuing.issue_purchase_invoice(
            tx.conn,
            FakePurchase(uuid.UUID(purchase["id"]), row.team_id, 25 * 10**8, "pi_x", clock.now()),
        )
    assert again.id == row.id


async def fail_after_issuing(actor: Actor) -> None:
    async with atomic() as tx:
        await issuing.issue_purchase_invoice(
            tx.conn, FakePurchase(uuid.uuid4(), uuid.UUID(actor.team_id), 5 * 10**8, None, None)
        )
        raise RuntimeError("the settlement failed after the invoice")


async def test_numbers_are_gap_free_per_year(api: Api, admin: Actor) -> None:
    clock.freeze(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    other = await sign_up(api, "other@example.com")
    for actor in (admin, other, admin):
        await purchase_invoice_for(actor, "5.00")
    # A transaction that fails after taking a number gives it back.
    with pytest.raises(RuntimeError):
        await fail_after_issuing(admin)
    await purchase_invoice_for(other, "5.00")
    clock.freeze(datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    await purchase_invoice_for(admin, "5.00")
    numbers = await Invoice.all().order_by("issued_at", "number").values_list("number", flat=True)
    assert numbers == [
        "CL-2026-000001",
        "CL-2026-000002",
        "CL-2026-000003",
        "CL-2026-000004",
        "CL-2027-000001",
    ]
    counters = dict(await InvoiceCounter.all().values_list("series", "last_number"))
    assert counters == {"CL-2026": 4, "CL-2027": 1}


# --- frozen billing details ----------------------------------------------------------------------


async def test_editing_the_address_after_issue_leaves_issued_invoices_unchanged(
    api: Api, admin: Actor, operator: Actor
) -> None:
    await october_team(api, operator, admin, "pm_card_visa")
    clock.freeze(NOV_1)
    await collection.close_month()
    before = await only_invoice(api, admin)

    moved = {
        "name": "Ada King",
        "line1": "1 Infinite Loop",
        "city": "Cupertino",
        "state": "ca",
        "postalCode": "95014",
        "country": "us",
        "taxId": {"type": "us_ein", "value": "123456789"},
    }
    saved = await save_address(api, admin, **moved)
    assert saved["errors"] == []
    assert saved["billingAddress"]["taxId"] == {"type": "us_ein", "value": "12-3456789"}
    after = await only_invoice(api, admin)
    assert after["billingAddress"] == before["billingAddress"]
    assert after["billingAddress"]["city"] == "Berlin"
    # What is issued from now on carries the new details.
    await invoiced_usage(api, operator, admin, [("1.00", None)], prefix="nov")
    upcoming = (await api.ok(UPCOMING, {"t": admin.team_id}, admin.token))["team"]
    assert upcoming["upcomingInvoice"]["billingAddress"]["city"] == "Cupertino"
    row = await purchase_invoice_for(admin, "5.00")
    assert row.billing_address["city"] == "Cupertino"


# --- reading ---------------------------------------------------------------------------------------


async def test_invoices_page_newest_first_with_cursors(api: Api, admin: Actor) -> None:
    clock.freeze(OCT_20)
    ids = []
    for _ in range(5):
        ids.append(str((await purchase_invoice_for(admin, "5.00")).id))
        clock.advance(timedelta(minutes=1))
    ids.reverse()
    first = await list_invoices(api, admin, first=2)
    assert [e["node"]["id"] for e in first["edges"]] == ids[:2]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]
    second = await list_invoices(api, admin, first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in second["edges"]] == ids[2:4]
    last = await list_invoices(api, admin, first=2, after=second["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in last["edges"]] == ids[4:]
    assert last["pageInfo"] == {"hasNextPage": False, "endCursor": last["edges"][-1]["cursor"]}
    assert (await list_invoices(api, admin, first=0))["edges"] == []

    for variables in ({"first": 101}, {"first": -1}, {"after": "not-a-cursor"}):
        body = await api.raw(INVOICES, {"t": admin.team_id, **variables}, admin.token)
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_members_read_invoices_and_outsiders_see_nothing(api: Api, admin: Actor) -> None:
    await save_address(api, admin, **BERLIN)
    await purchase_invoice_for(admin, "5.00")
    member = await sign_up(api, "member@example.com")
    await join(api, admin, member)
    seen = await list_invoices(api, member, team_id=admin.team_id)
    assert len(seen["edges"]) == 1
    address = await api.ok(
        f"query($t: ID!) {{ team(id: $t) {{ billingAddress {{ {ADDRESS_FIELDS} }} }} }}",
        {"t": admin.team_id},
        member.token,
    )
    assert address["team"]["billingAddress"]["city"] == "Berlin"
    stranger = await sign_up(api, "stranger@example.com")
    assert await api.error_code(INVOICES, {"t": admin.team_id}, stranger.token) == "NOT_FOUND"
