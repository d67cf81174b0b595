"""Emails against a real SMTP server on loopback: receipts, alerts per recipient, re-armed
limit alerts, invitations; the settings that drive them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import Settings
from app.invoices import collection, issuing
from app.kit import clock
from app.kit.errors import DomainError
from app.notifications import addresses
from tests.support.api import ACCEPT, Actor, Api, invite, join, make_token, sign_up
from tests.support.billing import set_limit
from tests.support.credits import use
from tests.support.notifications import (
    SETTINGS,
    UPDATE_SETTINGS,
    drain,
    notifier,
    smtp_sink,
    text_of,
    update_settings,
)
from tests.support.payments import add_card, buy


def event_ids(messages: list) -> set[str]:  # type: ignore[type-arg]
    return {str(m["X-Creditline-Event"]).split()[0] for m in messages}


async def test_a_purchase_sends_one_receipt_with_its_invoice_pdf(
    api: Api, admin: Actor, settings: Settings, tmp_path: Path
) -> None:
    with smtp_sink(tmp_path / "outbox") as sink:
        running = notifier(settings, sink.url)
        await add_card(api, admin)
        payload = await buy(api, admin, "25.00")
        assert payload["purchase"]["status"] == "SUCCEEDED", payload
        await drain(running)
        await drain(running)  # a second pass sends nothing again
        receipts = sink.of_type("purchase.succeeded")
        assert len(receipts) == 1
        (receipt,) = receipts
        assert receipt["To"] == admin.email
        assert "25.00" in str(receipt["Subject"])
        assert "25.00 of prepaid credits" in text_of(receipt)
        attachments = list(receipt.iter_attachments())
        assert len(attachments) == 1
        (pdf,) = attachments
        assert pdf.get_content_type() == "application/pdf"
        assert str(pdf.get_filename()).endswith(".pdf")
        assert pdf.get_content().startswith(b"%PDF")
        # The purchase's invoice is in the receipt: no separate invoice email.
        assert sink.of_type("invoice.issued") == []
        await running.stop()


async def test_crossing_80_percent_emails_each_recipient_once(
    api: Api, admin: Actor, settings: Settings, tmp_path: Path
) -> None:
    payload = await update_settings(api, admin, e=["finance@example.com", "CTO@Example.com"])
    assert payload["errors"] == [], payload
    assert payload["notificationSettings"]["emails"] == ["finance@example.com", "cto@example.com"]
    team_id = uuid.UUID(admin.team_id)
    await set_limit(admin.team_id, "10.00")
    with smtp_sink(tmp_path / "outbox") as sink:
        running = notifier(settings, sink.url)
        assert await use(team_id, "8.00")
        await drain(running)
        mails = sink.of_type("invoiced_limit.reached")
        assert sorted(str(m["To"]) for m in mails) == sorted(
            [admin.email, "finance@example.com", "cto@example.com"]
        )
        assert len(event_ids(mails)) == 1  # one event, one message per recipient
        for mail in mails:
            assert "80% of the $10.00 monthly spending limit" in text_of(mail)
            assert mail.get_body(preferencelist=("html",)) is not None
        # Still under 100%: no new crossing, no new email.
        assert await use(team_id, "0.50")
        await drain(running)
        assert len(sink.of_type("invoiced_limit.reached")) == 3
        await running.stop()


async def test_raising_the_limit_and_crossing_again_emails_the_new_limit(
    api: Api, admin: Actor, settings: Settings, tmp_path: Path
) -> None:
    team_id = uuid.UUID(admin.team_id)
    await set_limit(admin.team_id, "10.00")
    with smtp_sink(tmp_path / "outbox") as sink:
        running = notifier(settings, sink.url)
        assert await use(team_id, "10.00")
        await drain(running)
        first = sink.of_type("invoiced_limit.reached")
        assert len(first) == 2  # 80% and 100% of 10.00
        assert all("of the $10.00 monthly spending limit" in text_of(m) for m in first)
        await set_limit(admin.team_id, "30.00")
        assert await use(team_id, "20.00")
        await drain(running)
        mails = sink.of_type("invoiced_limit.reached")
        assert len(mails) == 4
        later = [m for m in mails if event_ids([m]) - event_ids(first)]
        texts = sorted(text_of(m) for m in later)
        assert len(texts) == 2
        assert "reached 100% of the $30.00 monthly spending limit" in texts[0]
        assert "reached 80% of the $30.00 monthly spending limit" in texts[1]
        await running.stop()


async def test_an_invitation_email_carries_the_way_to_accept(
    api: Api, admin: Actor, settings: Settings, tmp_path: Path
) -> None:
    with smtp_sink(tmp_path / "outbox") as sink:
        running = notifier(settings, sink.url)
        invitation_id = await invite(api, admin, admin.team_id, "newcomer@example.com")
        await drain(running)
        (mail,) = sink.of_type("invitation.created")
        assert mail["To"] == "newcomer@example.com"
        body = text_of(mail)
        assert f"http://console.test/?invitation={invitation_id}" in body
        # The invitee accepts with what the email says, signed in as that address.
        found = re.search(r'acceptInvitation\(input: \{invitationId: "([^"]+)"\}\)', body)
        assert found is not None
        assert found.group(1) == invitation_id
        token = make_token("newcomer@example.com")
        data = await api.ok(ACCEPT, {"i": found.group(1)}, token)
        assert data["acceptInvitation"]["errors"] == [], data
        # Nobody else got it, and it was sent once.
        assert [m["To"] for m in sink.messages()] == ["newcomer@example.com"]
        await running.stop()


async def test_without_smtp_no_email_deliveries_are_made(
    api: Api, admin: Actor, settings: Settings
) -> None:
    running = notifier(settings, None)
    await invite(api, admin, admin.team_id, "someone@example.com")
    report = await drain(running)
    assert report.dispatched == 1
    assert report.delivered == 0


async def test_settings_defaults_and_refusals(api: Api, admin: Actor) -> None:
    data = await api.ok(SETTINGS, {"t": admin.team_id}, admin.token)
    assert data["team"]["notificationSettings"] == {
        "emails": [],
        "invoicedLimitThresholds": [80, 100],
        "lowBalanceThreshold": None,
    }
    refused = [
        ({"e": ["a@example.com\r\nBcc: x@evil.example"]}, "INVALID_INPUT", "emails.0"),
        ({"e": ["ok@example.com", "Finance <f@example.com>"]}, "INVALID_INPUT", "emails.1"),
        ({"e": ["a\x00@example.com"]}, "INVALID_INPUT", "emails.0"),
        ({"th": [0]}, "INVALID_INPUT", "invoicedLimitThresholds"),
        ({"th": [101]}, "INVALID_INPUT", "invoicedLimitThresholds"),
        ({"low": "-1"}, "INVALID_AMOUNT", "lowBalanceThreshold"),
        ({"low": "abc"}, "INVALID_AMOUNT", "lowBalanceThreshold"),
    ]
    for variables, code, field in refused:
        payload = await update_settings(api, admin, **variables)
        assert payload["notificationSettings"] is None, variables
        (error,) = payload["errors"]
        assert (error["code"], error["field"]) == (code, field), (variables, error)
    for bad in ("\ud800@example.com", "a@b.example\nX: y", "a@localhost", "@example.com"):
        with pytest.raises(DomainError):
            addresses.clean(bad)
    payload = await update_settings(api, admin, th=[100, 50, 50], low="5.00")
    assert payload["errors"] == []
    assert payload["notificationSettings"] == {
        "emails": [],
        "invoicedLimitThresholds": [50, 100],
        "lowBalanceThreshold": "5.00",
    }
    payload = await update_settings(api, admin, low=None)  # null clears; the rest is kept
    assert payload["notificationSettings"]["lowBalanceThreshold"] is None
    assert payload["notificationSettings"]["invoicedLimitThresholds"] == [50, 100]


async def test_members_neither_read_nor_change_the_settings(api: Api, admin: Actor) -> None:
    member = await sign_up(api)
    await join(api, admin, member)
    body = await api.raw(SETTINGS, {"t": admin.team_id}, member.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    variables = {"t": admin.team_id, "e": ["x@example.com"]}
    body = await api.raw(UPDATE_SETTINGS, variables, member.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    data = await api.ok(SETTINGS, {"t": admin.team_id}, admin.token)
    assert data["team"]["notificationSettings"]["emails"] == []


async def test_a_monthly_invoice_and_its_failed_charge_are_emailed(
    api: Api, admin: Actor, settings: Settings, tmp_path: Path
) -> None:
    team_id = uuid.UUID(admin.team_id)
    clock.freeze(datetime(2026, 10, 20, tzinfo=UTC))
    await set_limit(admin.team_id, "100.00")
    assert await use(team_id, "30.00")
    clock.freeze(datetime(2026, 11, 1, 1, tzinfo=UTC))
    invoice, issued = await issuing.issue_monthly_invoice(team_id, "2026-10")
    assert issued
    assert invoice is not None
    await collection.record_failure(invoice, "Your card was declined.", None)
    with smtp_sink(tmp_path / "outbox") as sink:
        running = notifier(settings, sink.url)
        await drain(running)
        (mail,) = sink.of_type("invoice.issued")
        assert mail["To"] == admin.email
        assert f"Invoice {invoice.number} for 2026-10" == mail["Subject"]
        assert "$30.00" in text_of(mail)
        (pdf,) = mail.iter_attachments()
        assert pdf.get_content().startswith(b"%PDF")
        (failed,) = sink.of_type("alert.raised")
        assert failed["Subject"] == "A payment failed"
        assert "Your card was declined." in text_of(failed)
        await running.stop()
