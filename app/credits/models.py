"""Credit grants, the append-only ledger, usage records and the per-team account row."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.teams.models import Team


class CreditKind(StrEnum):
    FREE = "FREE"
    PROMOTIONAL = "PROMOTIONAL"
    PREPAID = "PREPAID"


class LedgerKind(StrEnum):
    GRANT = "GRANT"  # +amount when a grant is created
    USAGE = "USAGE"  # -drawn by a usage event
    EXPIRY = "EXPIRY"  # -remaining when a grant expires
    WITHDRAWAL = "WITHDRAWAL"  # -unspent credits taken back (refund, dispute)


class CreditAccount(Model):
    """One row per team: the lock every money movement takes, and cached balances.

    The cached balances equal the sums over the team's live grants whenever
    `next_expiry_at` is in the future (or null).
    """

    id = fields.BigIntField(primary_key=True)
    team: fields.OneToOneRelation[Team] = fields.OneToOneField(
        "teams.Team", related_name="account", on_delete=fields.CASCADE
    )
    free = fields.BigIntField(default=0)
    promotional = fields.BigIntField(default=0)
    prepaid = fields.BigIntField(default=0)
    invoiced_limit = fields.BigIntField(default=0)
    invoicing_suspended = fields.BooleanField(default=False)
    next_expiry_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    team_id: object

    class Meta:
        table = "credit_accounts"


class CreditGrant(Model):
    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="grants", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(CreditKind, max_length=16)
    amount = fields.BigIntField()
    remaining = fields.BigIntField()
    description = fields.CharField(max_length=500, null=True)
    granted_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    team_id: object

    class Meta:
        table = "credit_grants"
        indexes = (Index(fields=("team_id", "remaining")),)


class UsageRecord(Model):
    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="usage_records", on_delete=fields.CASCADE
    )
    idempotency_key = fields.CharField(max_length=255)
    amount = fields.BigIntField()
    from_free = fields.BigIntField()
    from_promotional = fields.BigIntField()
    from_prepaid = fields.BigIntField()
    invoiced = fields.BigIntField()
    description = fields.CharField(max_length=500, null=True)
    occurred_at = fields.DatetimeField()
    occurred_at_given = fields.BooleanField(default=True)
    period = fields.CharField(max_length=7)
    created_at = fields.DatetimeField()

    team_id: object

    class Meta:
        table = "usage_records"
        unique_together = (("team", "idempotency_key"),)
        indexes = (Index(fields=("team_id", "period")),)


class LedgerEntry(Model):
    """Append-only: rows are inserted, never updated or deleted."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="ledger_entries", on_delete=fields.CASCADE
    )
    grant: fields.ForeignKeyRelation[CreditGrant] = fields.ForeignKeyField(
        "credits.CreditGrant", related_name="ledger_entries", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(LedgerKind, max_length=16)
    amount = fields.BigIntField()
    usage: fields.ForeignKeyNullableRelation[UsageRecord] = fields.ForeignKeyField(
        "credits.UsageRecord", related_name="ledger_entries", null=True, on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()

    team_id: object
    grant_id: object

    class Meta:
        table = "ledger_entries"
        indexes = (Index(fields=("grant_id",)), Index(fields=("team_id",)))


class InvoicedPeriod(Model):
    """Invoiced usage of one team in one month (UTC), summed exactly in units."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="invoiced_periods", on_delete=fields.CASCADE
    )
    period = fields.CharField(max_length=7)
    amount = fields.BigIntField(default=0)

    team_id: object

    class Meta:
        table = "invoiced_periods"
        unique_together = (("team", "period"),)


class ClosedPeriod(Model):
    """A month that has been closed: usage dated inside it is refused."""

    period = fields.CharField(max_length=7, primary_key=True)
    closed_at = fields.DatetimeField()

    class Meta:
        table = "closed_periods"
