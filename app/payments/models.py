"""Stripe customers, saved payment methods, credit purchases and the webhook inbox."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.credits.models import CreditGrant
from app.kit.team_rows import TeamRow
from app.teams.models import Team


class PaymentMethodType(StrEnum):
    CARD = "CARD"
    BANK_ACCOUNT = "BANK_ACCOUNT"


class PurchaseMethod(StrEnum):
    CARD = "CARD"
    BANK_TRANSFER = "BANK_TRANSFER"


class PurchaseStatus(StrEnum):
    REQUIRES_ACTION = "REQUIRES_ACTION"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class StripeCustomer(TeamRow):
    """The team's Stripe customer: one per team, created on first need."""

    id = fields.BigIntField(primary_key=True)
    team: fields.OneToOneRelation[Team] = fields.OneToOneField(
        "teams.Team", related_name="stripe_customer", on_delete=fields.CASCADE
    )
    # Unique per team; Stripe's ids are unique across teams through `stripe_objects`.
    stripe_id = fields.CharField(max_length=255)
    created_at = fields.DatetimeField()

    team_id: uuid.UUID

    class Meta:
        table = "stripe_customers"
        unique_together = (("team", "stripe_id"),)


class PaymentMethod(TeamRow):
    """A card or bank account on file. Removed methods keep their row (`removed_at`) so
    past purchases still show what paid for them."""

    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="payment_methods", on_delete=fields.CASCADE
    )
    # Unique per team; Stripe's ids are unique across teams through `stripe_objects`.
    stripe_id = fields.CharField(max_length=255)
    type = fields.CharEnumField(PaymentMethodType, max_length=16)
    brand = fields.CharField(max_length=100, null=True)
    last4 = fields.CharField(max_length=4)
    exp_month = fields.IntField(null=True)
    exp_year = fields.IntField(null=True)
    is_default = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    removed_at = fields.DatetimeField(null=True)

    team_id: uuid.UUID

    class Meta:
        table = "payment_methods"
        unique_together = (("team", "stripe_id"),)
        indexes = (Index(fields=("team_id", "removed_at")),)


class Purchase(TeamRow):
    """A purchase of prepaid credits. Credited (a PREPAID `grant`) exactly once, when the
    payment succeeds; `status` moves only forward (see service._ALLOWED)."""

    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="purchases", on_delete=fields.CASCADE
    )
    amount = fields.BigIntField()  # units of 1e-8 USD, a whole number of cents
    method = fields.CharEnumField(PurchaseMethod, max_length=16)
    status = fields.CharEnumField(PurchaseStatus, max_length=16)
    payment_method: fields.ForeignKeyNullableRelation[PaymentMethod] = fields.ForeignKeyField(
        "payments.PaymentMethod", related_name="purchases", null=True, on_delete=fields.SET_NULL
    )
    # A new method from Stripe.js, attached to the customer and saved on file on success:
    # its PaymentMethodInfo fields (id, type, brand, last4, exp_month, exp_year).
    pending_payment_method: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    # Unique per team; across teams through `stripe_objects`.
    payment_intent_id = fields.CharField(max_length=255, null=True)
    failure_reason = fields.CharField(max_length=500, null=True)
    client_secret = fields.CharField(max_length=500, null=True)
    expected_settlement_at = fields.DatetimeField(null=True)
    off_session = fields.BooleanField(default=False)
    reason = fields.CharField(max_length=100, null=True)  # e.g. "auto_top_up"
    idempotency_key = fields.CharField(max_length=255, null=True)
    # What was asked (hash), so a replayed idempotency key with other parameters is refused.
    request_hash = fields.CharField(max_length=64)
    grant: fields.ForeignKeyNullableRelation[CreditGrant] = fields.ForeignKeyField(
        "credits.CreditGrant", related_name="purchases", null=True, on_delete=fields.SET_NULL
    )
    # Refunds and disputes (units): the cumulative amounts Stripe reported, and how
    # much unspent credit was actually withdrawn for them (never more than was left).
    refunded_amount = fields.BigIntField(default=0)
    disputed_amount = fields.BigIntField(default=0)
    withdrawn_amount = fields.BigIntField(default=0)
    refunded_at = fields.DatetimeField(null=True)
    disputed_at = fields.DatetimeField(null=True)
    # The part of a dispute that could not be withdrawn (already spent): owed by the team,
    # which is why its invoiced billing is suspended while any is outstanding. Later
    # purchases pay it (`shortfall_paid`); winning the dispute clears it (`dispute_won_at`,
    # with `restored_amount` given back). Outstanding: shortfall - paid, until won.
    shortfall_amount = fields.BigIntField(default=0)
    shortfall_paid = fields.BigIntField(default=0)
    # On a paying purchase: how much of its grant went to earlier purchases' shortfalls.
    covered_shortfall = fields.BigIntField(default=0)
    dispute_won_at = fields.DatetimeField(null=True)
    restored_amount = fields.BigIntField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)

    team_id: uuid.UUID
    payment_method_id: uuid.UUID | None
    grant_id: uuid.UUID | None

    class Meta:
        table = "purchases"
        unique_together = (("team", "idempotency_key"), ("team", "payment_intent_id"))
        indexes = (Index(fields=("team_id", "created_at")),)


class StripeObjectKind(StrEnum):
    CUSTOMER = "CUSTOMER"
    PAYMENT_METHOD = "PAYMENT_METHOD"
    PAYMENT_INTENT = "PAYMENT_INTENT"


class StripeObject(Model):
    """Which team a Stripe id belongs to: a webhook names a customer, a payment method or
    a payment intent, never our team, and the team's rows are keyed (and, on Citus,
    placed) by team. Written in the transaction that writes the row carrying the id;
    its key also keeps a Stripe id with one team. No foreign key to the team: the table
    is distributed by its own key, apart from the team's (docs/distribution-keys-money.md)."""

    stripe_id = fields.CharField(max_length=255, primary_key=True)
    kind = fields.CharEnumField(StripeObjectKind, max_length=16)
    team_id = fields.UUIDField()

    class Meta:
        table = "stripe_objects"


class StripeEvent(Model):
    """The webhook inbox: each Stripe event is handled once (unique on its id)."""

    id = fields.CharField(max_length=255, primary_key=True)
    type = fields.CharField(max_length=100)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField()
    outcome = fields.CharField(max_length=100)  # what the handler did (for support)
    received_at = fields.DatetimeField()

    class Meta:
        table = "stripe_events"
