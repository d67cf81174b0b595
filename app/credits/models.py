"""Credit grants, the append-only ledger, usage records and the per-team account row."""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.kit.team_rows import TeamRow
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


class CreditAccount(TeamRow):
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
    # Auto top-up and low-credit alerts (credits/programs.py). Kept on the locked row so
    # the usage path decides a threshold crossing without another query.
    auto_top_up_enabled = fields.BooleanField(default=False, db_default=False)
    auto_top_up_threshold = fields.BigIntField(null=True)  # null: never configured
    auto_top_up_amount = fields.BigIntField(default=0, db_default=0)
    auto_top_up_monthly_limit = fields.BigIntField(default=0, db_default=0)
    auto_top_up_paused_reason = fields.CharField(max_length=500, null=True)
    auto_top_up_pending = fields.BooleanField(
        default=False, db_default=False
    )  # one top-up in flight at most
    # Bumped whenever credits are added, the invoiced limit raised or the threshold set:
    # it names a low-credit crossing in alert keys (one alert per crossing).
    funding_seq = fields.BigIntField(default=0, db_default=0)
    # The sum of the team's HELD holds, kept on the locked row so the usage gate compares
    # against what is available without summing the holds (credits/holds.py).
    held = fields.BigIntField(default=0, db_default=0)
    # Notification settings the usage path reads from the locked row (credits/programs.py):
    # invoiced-limit thresholds in percent ("80,100"), crossings of the current limit;
    # the low-balance alert threshold (null: the auto top-up threshold, if any).
    alert_thresholds = fields.CharField(max_length=64, default="80,100", db_default="80,100")
    low_balance_threshold = fields.BigIntField(null=True)
    # Whether `team.blocked` was the last of team.blocked/unblocked emitted (so each
    # transition is told once); flipped only on a transition.
    blocked = fields.BooleanField(default=False, db_default=False)

    team_id: uuid.UUID

    class Meta:
        table = "credit_accounts"
        indexes = (Index(fields=("next_expiry_at",)), Index(fields=("blocked",)))


class CreditGrant(TeamRow):
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

    team_id: uuid.UUID

    class Meta:
        table = "credit_grants"
        # By team only: every usage event updates `remaining`, and an index on it made
        # each of those updates a new row version with two new index entries (never a
        # HOT update), bloating the index under a hot team. The exhausted grants a team
        # accumulates are filtered out of the heap instead.
        indexes = (Index(fields=("team_id",)),)


class UsageRecord(TeamRow):
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
    # What the event was for ({"model": "grok-4", ...}, see credits/dimensions.py); part of
    # the idempotency comparison.
    dimensions: fields.JSONField[dict[str, str] | None] = fields.JSONField(null=True)

    team_id: uuid.UUID

    class Meta:
        table = "usage_records"
        unique_together = (("team", "idempotency_key"),)
        # (team_id, occurred_at): Team.usageRecords pages newest first, the exports, and
        # the edges of a usage series that are not whole hours (docs/usage-history.md).
        indexes = (Index(fields=("team_id", "period")), Index(fields=("team_id", "occurred_at")))


class LedgerEntry(TeamRow):
    """Append-only: rows are inserted, never updated or deleted."""

    id = fields.BigIntField(primary_key=True)
    # No database constraint on the team or the usage link: each is checked by the audit
    # (the entry's team is its grant's, a usage draw has its record), while the grant's
    # constraint carries the cascade when a team is deleted. Checking them on insert
    # took nearly half of the ledger insert on the usage path.
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="ledger_entries", on_delete=fields.CASCADE, db_constraint=False
    )
    grant: fields.ForeignKeyRelation[CreditGrant] = fields.ForeignKeyField(
        "credits.CreditGrant", related_name="ledger_entries", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(LedgerKind, max_length=16)
    amount = fields.BigIntField()
    usage: fields.ForeignKeyNullableRelation[UsageRecord] = fields.ForeignKeyField(
        "credits.UsageRecord",
        related_name="ledger_entries",
        null=True,
        on_delete=fields.CASCADE,
        db_constraint=False,
    )
    created_at = fields.DatetimeField()

    team_id: uuid.UUID
    grant_id: uuid.UUID
    usage_id: uuid.UUID | None

    class Meta:
        table = "ledger_entries"
        # (team_id, id) rather than (team_id): still one index per insert, and it also
        # serves the statement's pages in ledger order and its running balances
        # (docs/usage-history.md). (team_id, grant_id): the grant's entries, and the
        # composite foreign key to the grant on PostgreSQL (docs/distribution-keys-money.md).
        indexes = (Index(fields=("team_id", "grant_id")), Index(fields=("team_id", "id")))


class RollupSums(TeamRow):
    """What the hourly and daily rollups share: a grouping, its value and the sums."""

    id = fields.BigIntField(primary_key=True)
    dimension = fields.CharField(max_length=65)
    value = fields.CharField(max_length=500)
    amount = fields.BigIntField()
    from_credits = fields.BigIntField()
    invoiced = fields.BigIntField()
    events = fields.BigIntField()

    team_id: uuid.UUID

    class Meta:
        abstract = True


class UsageRollup(RollupSums):
    """Usage summed per team, UTC hour and group, written with the records it sums (in
    the usage statement, under the team's account lock): a series over a long range
    reads these, never the raw records (docs/usage-history.md).

    `dimension` names the grouping: "" for the whole hour (one row per hour, `value`
    ""), "#description" for the event's description, otherwise a dimension key (keys
    never start with "#"). Events without the description or the key are in no row of
    that grouping: their group is the whole hour's row minus the rows that are.
    """

    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="usage_rollups", on_delete=fields.CASCADE
    )
    hour = fields.DatetimeField()

    class Meta:
        table = "usage_rollups"
        # The upsert's key, in the order a series reads it: a team's grouping over hours.
        unique_together = (("team", "dimension", "hour", "value"),)


class InvoicedPeriod(TeamRow):
    """Invoiced usage of one team in one month (UTC), summed exactly in units."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="invoiced_periods", on_delete=fields.CASCADE
    )
    period = fields.CharField(max_length=7)
    amount = fields.BigIntField(default=0)

    team_id: uuid.UUID

    class Meta:
        table = "invoiced_periods"
        unique_together = (("team", "period"),)


class ClosedPeriod(Model):
    """A month that has been closed: usage dated inside it is refused."""

    period = fields.CharField(max_length=7, primary_key=True)
    closed_at = fields.DatetimeField()

    class Meta:
        table = "closed_periods"


# --- credit programs: promo codes, alerts, auto top-up ------------------------------------


class PromoCode(Model):
    """A code worth promotional credits, stored trimmed and upper-cased."""

    id = fields.UUIDField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    amount = fields.BigIntField()
    expires_at = fields.DatetimeField(null=True)
    max_redemptions = fields.IntField(null=True)
    redemptions = fields.IntField(default=0)
    credit_validity_days = fields.IntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "promo_codes"


class PromoRedemption(TeamRow):
    """One team's redemption of one code: the unique key makes it once per team."""

    id = fields.BigIntField(primary_key=True)
    promo_code: fields.ForeignKeyRelation[PromoCode] = fields.ForeignKeyField(
        "credits.PromoCode", related_name="redemptions_made", on_delete=fields.CASCADE
    )
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="promo_redemptions", on_delete=fields.CASCADE
    )
    grant: fields.ForeignKeyRelation[CreditGrant] = fields.ForeignKeyField(
        "credits.CreditGrant", related_name="promo_redemptions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()

    team_id: uuid.UUID
    promo_code_id: uuid.UUID
    grant_id: uuid.UUID

    class Meta:
        table = "promo_redemptions"
        unique_together = (("promo_code", "team"),)


class PromoFailure(TeamRow):
    """A failed redemption, kept for an hour: the guessing throttle counts these, by team
    and by the user who tried (so new teams do not buy new guesses)."""

    id = fields.BigIntField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="promo_failures", on_delete=fields.CASCADE
    )
    # Who tried; None for rows from before it was recorded (pruned within the hour).
    user_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField()

    team_id: uuid.UUID

    class Meta:
        table = "promo_failures"
        indexes = (
            Index(fields=("team_id", "created_at")),
            Index(fields=("created_at",)),
            Index(fields=("user_id", "created_at")),
        )


class AlertKind(StrEnum):
    INVOICED_LIMIT_80 = "INVOICED_LIMIT_80"
    INVOICED_LIMIT_100 = "INVOICED_LIMIT_100"
    CREDITS_LOW = "CREDITS_LOW"
    CREDITS_EXHAUSTED = "CREDITS_EXHAUSTED"
    AUTO_TOP_UP_FAILED = "AUTO_TOP_UP_FAILED"
    PAYMENT_FAILED = "PAYMENT_FAILED"


class BillingAlert(TeamRow):
    """An alert raised once per crossing per month: (team, kind, dedupe_key) is unique."""

    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="billing_alerts", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(AlertKind, max_length=32)
    message = fields.CharField(max_length=500)
    period = fields.CharField(max_length=7)
    dedupe_key = fields.CharField(max_length=120)
    created_at = fields.DatetimeField()

    team_id: uuid.UUID

    class Meta:
        table = "billing_alerts"
        unique_together = (("team", "kind", "dedupe_key"),)
        indexes = (Index(fields=("team_id", "created_at")),)


class TopUpStatus(StrEnum):
    PENDING = "PENDING"  # decided, the charge not yet answered
    PROCESSING = "PROCESSING"  # Stripe has not settled it yet
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # declined or needs the cardholder: auto top-up paused
    SKIPPED = "SKIPPED"  # a cap (24 hours, month) held it back; nothing charged


class AutoTopUpAttempt(TeamRow):
    """One auto top-up decision and its outcome (the caps count these rows)."""

    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="auto_top_ups", on_delete=fields.CASCADE
    )
    amount = fields.BigIntField()
    status = fields.CharEnumField(TopUpStatus, max_length=16)
    period = fields.CharField(max_length=7)  # calendar month (UTC) of created_at
    purchase_id = fields.CharField(max_length=64, null=True)  # payments.Purchase id
    failure_reason = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    team_id: uuid.UUID

    class Meta:
        table = "auto_top_up_attempts"
        indexes = (Index(fields=("team_id", "created_at")), Index(fields=("status", "updated_at")))


# --- holds ------------------------------------------------------------------------------


class HoldStatus(StrEnum):
    HELD = "HELD"  # reserving its amount: counted in the account's `held`
    CAPTURED = "CAPTURED"  # drawn as one usage event; the rest freed
    RELEASED = "RELEASED"  # freed by the caller
    EXPIRED = "EXPIRED"  # freed at `expires_at`, never captured


class Hold(TeamRow):
    """Money reserved for a request under way, drawn from no grant until captured.

    Only written with the team's account row locked, which also keeps the row's `held`
    equal to the sum of the team's HELD holds (docs/holds.md).
    """

    id = fields.UUIDField(primary_key=True)
    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="holds", on_delete=fields.CASCADE
    )
    idempotency_key = fields.CharField(max_length=255)
    amount = fields.BigIntField()
    captured = fields.BigIntField(default=0)
    status = fields.CharEnumField(HoldStatus, max_length=16)
    description = fields.CharField(max_length=500, null=True)
    dimensions: fields.JSONField[dict[str, str] | None] = fields.JSONField(null=True)
    # The usage record a capture wrote (its key is `hold:<id>`); null until captured.
    usage: fields.ForeignKeyNullableRelation[UsageRecord] = fields.ForeignKeyField(
        "credits.UsageRecord", related_name="holds", null=True, on_delete=fields.CASCADE
    )
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    team_id: uuid.UUID
    usage_id: uuid.UUID | None

    class Meta:
        table = "holds"
        unique_together = (("team", "idempotency_key"),)
        indexes = (
            Index(fields=("team_id", "created_at")),  # Team.holds, newest first
            Index(fields=("status", "expires_at")),  # the sweeper's due holds
        )


class UsageDailyRollup(RollupSums):
    """`UsageRollup`'s sums per UTC day instead of hour, written by the same statement:
    a daily or monthly series over months reads one row per day and group instead of
    24 (docs/usage-history.md). Same groupings as `UsageRollup`."""

    team: fields.ForeignKeyRelation[Team] = fields.ForeignKeyField(
        "teams.Team", related_name="usage_daily_rollups", on_delete=fields.CASCADE
    )
    day = fields.DatetimeField()

    class Meta:
        table = "usage_daily_rollups"
        # The upsert's key, in the order a series reads it: a team's grouping over days.
        unique_together = (("team", "dimension", "day", "value"),)
