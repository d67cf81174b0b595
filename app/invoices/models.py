"""Billing addresses, invoices (immutable once issued), their lines, and the number counters."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.kit.team_rows import TeamRow
from app.teams.models import Team


class InvoiceKind(StrEnum):
    CREDIT_PURCHASE = "CREDIT_PURCHASE"
    MONTHLY_USAGE = "MONTHLY_USAGE"


class InvoiceStatus(StrEnum):
    OPEN = "OPEN"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    VOID = "VOID"


class BillingAddress(TeamRow):
    """A team's current billing details (invoices keep their own frozen copy)."""

    id = fields.BigIntField(primary_key=True)
    team: fields.OneToOneRelation[Team] = fields.OneToOneField(
        "teams.Team", related_name="billing_address", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=200)
    organization = fields.CharField(max_length=200, null=True)
    email = fields.CharField(max_length=254, null=True)
    line1 = fields.CharField(max_length=200)
    line2 = fields.CharField(max_length=200, null=True)
    city = fields.CharField(max_length=100)
    state = fields.CharField(max_length=100, null=True)
    postal_code = fields.CharField(max_length=20, null=True)
    country = fields.CharField(max_length=2)
    tax_id_type = fields.CharField(max_length=16, null=True)
    tax_id_value = fields.CharField(max_length=64, null=True)
    updated_at = fields.DatetimeField()
    # Stripe sync is best-effort: `version` counts saves, `synced_version` the last one Stripe
    # accepted, so a later pass can catch up on what failed.
    version = fields.IntField(default=1)
    synced_version = fields.IntField(default=0)
    sync_error = fields.CharField(max_length=500, null=True)

    team_id: uuid.UUID

    class Meta:
        table = "billing_addresses"


class Invoice(TeamRow):
    """A legal document: content and number never change after issue, only payment state does."""

    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="invoices", on_delete=fields.RESTRICT
    )
    # Unique per team in the database (a key of a table distributed by team_id must hold
    # team_id); numbers stay unique across teams because each comes from the series'
    # counter row, locked while the invoice is inserted (app/invoices/numbering.py).
    number = fields.CharField(max_length=32)
    # What the invoice is for, unique per team: "monthly:<team>:<period>" or
    # "purchase:<id>" (both name the team, so unique per team is unique). This key, not a
    # check, makes a team-period (or a purchase) invoiced at most once.
    source_key = fields.CharField(max_length=100)
    kind = fields.CharEnumField(InvoiceKind, max_length=20)
    status = fields.CharEnumField(InvoiceStatus, max_length=20)
    currency = fields.CharField(max_length=3, default="usd")
    period = fields.CharField(max_length=7, null=True)
    period_start = fields.DatetimeField(null=True)
    period_end = fields.DatetimeField(null=True)
    subtotal_cents = fields.BigIntField()
    tax_cents = fields.BigIntField(default=0)
    total_cents = fields.BigIntField()
    # The billing address and tax id as they were at issue (null: none on file then).
    billing_address: Any = fields.JSONField(null=True)
    # The seller as configured at issue (app/invoices/seller.py; null: issued before it was
    # kept, shown with the current settings).
    seller: Any = fields.JSONField(null=True)
    purchase_id = fields.UUIDField(null=True)
    # The payment method (app.payments PaymentMethod id) that paid, or was last charged.
    payment_method_id = fields.UUIDField(null=True)
    issued_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)
    payment_intent_id = fields.CharField(max_length=255, null=True)
    failure_message = fields.CharField(max_length=500, null=True)
    # Declines recorded so far; the next charge's idempotency key uses attempts + 1, so a retry
    # after a crash (no outcome recorded) reuses the key of the attempt it repeats.
    charge_attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    # A lease: the worker charging this invoice until then; others leave it alone.
    charging_until = fields.DatetimeField(null=True)

    team_id: uuid.UUID
    lines: fields.ReverseRelation[InvoiceLine]

    class Meta:
        table = "invoices"
        unique_together = (("team", "number"), ("team", "source_key"))
        indexes = (
            Index(fields=("team_id", "issued_at")),
            Index(fields=("status", "next_attempt_at")),
        )


class InvoiceLine(TeamRow):
    """One line of an invoice; it carries its invoice's team (its shard on Citus)."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="invoice_lines", on_delete=fields.CASCADE
    )
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "invoices.Invoice", related_name="lines", on_delete=fields.CASCADE
    )
    position = fields.IntField()
    description = fields.CharField(max_length=500)
    quantity = fields.BigIntField(default=1)
    unit_amount_cents = fields.BigIntField()
    amount_cents = fields.BigIntField()
    # Usage lines: the exact sum in units before the one rounding to cents.
    exact_units = fields.BigIntField(null=True)

    team_id: uuid.UUID
    invoice_id: uuid.UUID

    class Meta:
        table = "invoice_lines"
        unique_together = (("team", "invoice", "position"),)


class InvoiceCounter(Model):
    """The last number issued in a series ("CL-2026"), locked FOR UPDATE by each issue."""

    series = fields.CharField(max_length=16, primary_key=True)
    last_number = fields.BigIntField(default=0)

    class Meta:
        table = "invoice_counters"


class PeriodClose(Model):
    """Progress of a month's close: `completed_at` is set once every team was handled."""

    period = fields.CharField(max_length=7, primary_key=True)
    started_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "period_closes"
